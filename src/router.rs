//! The route table (above the HTTP server library, below nothing): method + path → handler. Health routes, then the admin plane
//! (`/v1/prodex/gateway/…`, `admin::handle`), then the data plane (with and without `/v1`). While draining, everything but health gets 503 `draining`.
//! A data-plane path with a dot segment or an encoded separator is refused (400 `invalid_path`)
//! before it is classified, so the path classified is the path the upstream receives.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::json;

use crate::core::openai::{classify, RouteMatch};
use crate::error::ApiError;
use crate::http::server::{Exchange, Handler};
use crate::proxy;
use crate::state::Shared;

/// The gateway's request handler.
pub struct Gateway {
    pub shared: Arc<Shared>,
}

impl Handler for Gateway {
    fn handle(&self, ex: &mut Exchange<'_>) {
        let path = ex.head.path().to_string();
        let method = ex.head.method.clone();
        if let Some(kind) = health_route(&path) {
            if method != "GET" && method != "HEAD" {
                let _ = ex.send_error(&ApiError::method_not_allowed(&method, "GET, HEAD"));
                return;
            }
            health(&self.shared, ex, kind);
            return;
        }
        if ex.draining || self.shared.lifecycle.draining.load(Ordering::Acquire) {
            ex.close_after();
            let _ = ex.send_error(&ApiError::draining());
            return;
        }
        if let Some(rest) = crate::admin::admin_path(&path) {
            crate::admin::handle(&self.shared, ex, rest);
            return;
        }
        // Data-plane paths are forwarded: refuse any that a normalising upstream could read as
        // another route. (Admin paths are never forwarded; their ids may hold any character.)
        if let Err(bad) = crate::core::openai::check_path(&path) {
            let _ = ex.send_error(&ApiError::invalid_path(bad.message()));
            return;
        }
        match classify(&method, &path) {
            RouteMatch::Found(route, suffix) => proxy::handle(&self.shared, ex, &route, &suffix),
            RouteMatch::MethodNotAllowed(allow) => {
                let _ = ex.send_error(&ApiError::method_not_allowed(&method, allow));
            }
            RouteMatch::NotFound => {
                let _ = ex.send_error(&ApiError::route_not_found(&method, &path));
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Health {
    Live,
    Ready,
    Startup,
    /// `GET /` and `GET /v1`: where things are, for whoever opens the address in a browser.
    Landing,
}

fn health_route(path: &str) -> Option<Health> {
    match path {
        "/livez" => Some(Health::Live),
        "/readyz" => Some(Health::Ready),
        "/startupz" => Some(Health::Startup),
        "/" | "/v1" | "/v1/" => Some(Health::Landing),
        _ => None,
    }
}

fn health(shared: &Shared, ex: &mut Exchange<'_>, kind: Health) {
    let lc = &shared.lifecycle;
    let draining = lc.draining.load(Ordering::Acquire);
    let (status, body) = match kind {
        Health::Live => (200, json!({"status": "ok"})),
        Health::Landing => (
            200,
            json!({
                "object": "prodex.gateway",
                "version": env!("CARGO_PKG_VERSION"),
                "data_plane": "/v1 (OpenAI-compatible: point your SDK's base URL here)",
                "admin": "/v1/prodex/gateway/admin",
                "openapi": "/v1/prodex/gateway/openapi.json",
                "health": ["/livez", "/readyz", "/startupz"],
            }),
        ),
        Health::Startup => (
            200,
            json!({
                "status": "started",
                "version": env!("CARGO_PKG_VERSION"),
                "started_at": crate::core::time::format_rfc3339(shared.started_at_ms),
            }),
        ),
        Health::Ready => {
            let state_down = lc.state_down.load(Ordering::Acquire);
            let status = if draining {
                "draining"
            } else if state_down {
                "state_unavailable"
            } else {
                "ready"
            };
            // Targets whose circuit is not closed: informative only (one bad provider must not
            // take the node out of rotation).
            let names = |i: usize| shared.config.providers.get(i).map_or_else(|| i.to_string(), |p| p.name.clone());
            let degraded: Vec<serde_json::Value> = shared
                .targets
                .upstream(crate::clock::unix_ms(), names)
                .health
                .into_iter()
                .filter(|(_, _, state)| *state != "closed")
                .map(|(provider, model, state)| json!({"provider": provider, "model": model, "circuit": state}))
                .collect();
            let body = json!({
                "status": status,
                "draining": draining,
                "state_backend": shared.store.backend(),
                "state_available": !state_down,
                "in_flight_requests": lc.in_flight.load(Ordering::Acquire),
                "open_connections": lc.open_connections.load(Ordering::Acquire),
                "degraded_upstreams": degraded,
            });
            (if draining || state_down { 503 } else { 200 }, body)
        }
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let _ = ex.send(status, &[("content-type", "application/json"), ("cache-control", "no-store")], &bytes);
}
