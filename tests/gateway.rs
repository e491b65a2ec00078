//! The one integration-test binary: every test drives the real `prodex` binary over TCP.

mod support;

/// Data plane: routes, auth, headers, usage, upstream faults and retries.
mod proxy;
/// Streaming: event timing, include_usage handling, disconnects.
mod streaming;
/// The HTTP server: limits, malformed requests, keep-alive, concurrency.
mod server;
/// Process lifecycle: health, SIGTERM drain, logs, the CLI.
mod lifecycle;
/// Real SDK clients (the official `openai` Python package).
mod sdk;
