//! The one integration-test binary: every test drives the real `prodex` binary over TCP.

// Tests measure real time (chunk arrival gaps, deadlines); the clock rule is for the product.
#![allow(clippy::disallowed_methods)]

mod support;

/// Admin plane: key lifecycle, safe mutations, seed route/role statements, no leaks (S3).
mod admin;
/// Virtual keys: admission rules, metering, the ledger.
mod admission;
/// The Anthropic provider: OpenAI clients translated, `/v1/messages` passed through, cache writes billed.
mod anthropic;
/// Billing integrity under hostile input: worst cases, hidden usage, malformed usage.
mod billing;
/// Third-party checkers: promtool on metrics, the OpenAPI validator and schemathesis.
mod contract;
/// Deployment: the container reproduced around the binary.
mod deploy;
/// Regressions for the newcomer and hostile-tester findings, each named by its finding id.
mod findings;
/// The Gemini bridge: translation both ways, streams, tools, errors, embeddings, models.
mod gemini;
/// Tenant isolation and request hygiene: dot segments, shared provider objects, body limits.
mod isolation;
/// Ledger queries, paging, summaries, CSV exports and restored metrics over seeded rows.
mod ledger;
/// Process lifecycle: health, SIGTERM drain, logs, the CLI.
mod lifecycle;
/// Anthropic-shaped clients in front of an OpenAI-compatible upstream (`/v1/messages` translated).
mod messages;
/// The built-in mock provider: every route with no account, metered and priced.
mod mockprovider;
/// Data plane: routes, auth, headers, usage, upstream faults and retries.
mod proxy;
/// Several providers in one process: routing by globs, aliases, fallback across protocols.
mod routing;
/// One admission rule set: a scenario table run on core::admission and on every store.
mod rules;
/// SCIM 2.0 provisioning as IdPs drive it, and user isolation by tenant.
mod scim;
/// Tenant and key-prefix isolation on every admin route (S1).
mod scopes;
/// Real SDK clients (the official `openai` Python package).
mod sdk;
/// The HTTP server: limits, malformed requests, keep-alive, concurrency.
mod server;
/// Trusted-proxy SSO on the admin plane (S2): headers only with the proxy secret, SCIM fallback.
mod sso;
/// The storage conformance suite, run against every backend.
mod store;
/// Streaming: event timing, include_usage handling, disconnects.
mod streaming;
/// TLS to Postgres and Redis: sslmode, sslrootcert, rediss://, refusals.
mod tls;
/// Moving state: import (seed JSON too), export, migrate.
mod transfer;
