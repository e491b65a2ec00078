//! # prodex gateway
//!
//! A self-hosted, OpenAI-compatible LLM gateway in one binary. Clients point their base URL at it;
//! it authenticates them, forwards to the upstream provider, streams the answer back event by event
//! and records every call.
//!
//! # Layout
//!
//! - [`core`]: the sync-free rules (routes, SSE decoding, usage, credentials, time formats). No I/O,
//!   no clock, no locks; everything time-dependent takes `now` as an argument.
//! - [`config`]: `policy.toml` + environment + flags → a validated [`config::Config`] (pure).
//! - [`http`]: our HTTP/1.1 server library on may coroutines (`server`) and its pure codec
//!   (`codec`); it knows no handler. [`router`]: the route table it is given (health, admin,
//!   data plane). [`lifecycle`]: the counters the server, health routes and probes share.
//! - [`proxy`]: the data plane in phase order; [`upstream`]: ureq on may sockets.
//! - [`admin`]: the admin plane (`/v1/prodex/gateway/…`): principals, keys, usage, ledger, CSV,
//!   metrics, OpenAPI, audit.
//! - [`state`]: what every request shares; [`error`]: the edge's OpenAI error objects.
//! - [`store`]: the storage trait and its redb, Postgres and Redis backends; [`keyring`]: the
//!   in-memory key map; [`transfer`]: state export, import and migrate; [`retention`]: the
//!   ledger retention task; [`background`]: background-thread priority.
//! - [`serve`], [`cli`], [`logs`], [`clock`]: process lifecycle, command line, logging, time.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::dbg_macro, clippy::disallowed_methods)]

pub mod admin;
pub mod background;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod error;
pub mod http;
pub mod keyring;
pub mod lifecycle;
pub mod logs;
pub mod proxy;
pub mod retention;
pub mod router;
pub mod serve;
pub mod state;
pub mod store;
pub mod targets;
pub mod transfer;
pub mod upstream;
