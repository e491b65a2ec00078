//! The HTTP/1.1 server library: request heads and framing (`codec.rs`, pure), the accept loop,
//! connection coroutines and `Exchange` (`server.rs`). It knows no handler: `router.rs` is the
//! `Handler` the gateway gives it.

pub mod codec;
pub mod server;
