//! The edge's error type: every failure a client can see, mapped once to an HTTP status and an
//! OpenAI error object (`{"error":{"message","type","param","code"}}`).
//!
//! Invariants: `code` is a stable snake_case string from gateway.md §3; messages never contain a
//! secret, a prompt or a completion (they name the problem and, at most, a parameter or header).

use std::fmt;

/// Which side of the proxy caused the failure (pingora's `ErrorSource`): decides blame in logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client sent something we refuse.
    Downstream,
    /// The upstream provider failed or misbehaved.
    Upstream,
    /// The gateway itself (draining, overloaded, state unavailable).
    Internal,
}

/// An error answered to the client as an OpenAI error object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub side: Side,
    /// Extra response headers (e.g. `allow` on 405, `retry-after` on rate limits).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, side: Side, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), param: None, side, headers: Vec::new() }
    }

    #[must_use]
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The OpenAI `type` for this status.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self.status {
            401 | 400 | 404 | 405 | 408 | 409 | 412 | 413 | 414 | 415 | 422 | 431 => "invalid_request_error",
            403 => "permission_error",
            429 if self.code.contains("budget") => "insufficient_quota",
            429 => "rate_limit_error",
            _ => "api_error",
        }
    }

    /// The Anthropic error `type` for this status.
    #[must_use]
    pub fn anthropic_kind(&self) -> &'static str {
        match self.status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    }

    /// The JSON body in the caller's dialect: Anthropic's error object on `/v1/messages`, the
    /// OpenAI error object everywhere else.
    #[must_use]
    pub fn body_in(&self, dialect: crate::core::route::Dialect) -> Vec<u8> {
        if !dialect.anthropic() {
            return self.body();
        }
        // Anthropic's error object has no `param`: the message names it when it does not already.
        let message = match &self.param {
            Some(p) if !self.message.contains(p.as_str()) => format!("{p}: {}", self.message),
            _ => self.message.clone(),
        };
        let value = serde_json::json!({"type": "error", "error": {"type": self.anthropic_kind(), "message": message}});
        serde_json::to_vec(&value).unwrap_or_default()
    }

    /// The JSON body (OpenAI's error object).
    #[must_use]
    pub fn body(&self) -> Vec<u8> {
        let value = serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind(),
                "param": self.param,
                "code": self.code,
            }
        });
        serde_json::to_vec(&value).unwrap_or_default()
    }

    pub fn invalid_json(detail: impl fmt::Display) -> Self {
        Self::new(400, "invalid_json", Side::Downstream, format!("request body is not valid JSON: {detail}"))
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, Side::Downstream, message)
    }
    pub fn unsupported_route(route: &str, provider: &str) -> Self {
        Self::new(
            400,
            "unsupported_route",
            Side::Downstream,
            format!(
                "{route} is not served by the {provider} provider (`prodex gateway providers` lists what each serves)"
            ),
        )
    }
    pub fn invalid_api_key() -> Self {
        Self::new(401, "invalid_api_key", Side::Downstream, "missing or invalid API key")
    }
    /// The caller holds a real key's token: telling it why the key stopped working leaks nothing.
    pub fn key_disabled() -> Self {
        Self::new(401, "key_disabled", Side::Downstream, "this API key is disabled; ask its administrator to enable it")
    }
    pub fn key_expired() -> Self {
        Self::new(401, "key_expired", Side::Downstream, "this API key has expired; ask its administrator for a new one")
    }
    pub fn route_not_found(method: &str, path: &str) -> Self {
        Self::new(404, "route_not_found", Side::Downstream, format!("no route for {method} {}", printable(path)))
    }
    pub fn method_not_allowed(method: &str, allow: &str) -> Self {
        Self::new(
            405,
            "method_not_allowed",
            Side::Downstream,
            format!("method {method} is not allowed here; allowed: {allow}"),
        )
        .with_header("allow", allow)
    }
    pub fn request_timeout() -> Self {
        Self::new(408, "request_timeout", Side::Downstream, "the request was not received in time")
    }
    pub fn request_too_large(limit: u64) -> Self {
        Self::new(
            413,
            "request_too_large",
            Side::Downstream,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }
    pub fn uri_too_long(limit: usize) -> Self {
        Self::new(414, "uri_too_long", Side::Downstream, format!("request target exceeds the limit of {limit} bytes"))
    }
    pub fn headers_too_large(detail: &str) -> Self {
        Self::new(431, "headers_too_large", Side::Downstream, format!("request headers too large: {detail}"))
    }
    pub fn malformed_request(detail: &str) -> Self {
        Self::new(400, "malformed_request", Side::Downstream, format!("malformed HTTP request: {detail}"))
    }
    pub fn permission(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(403, code, Side::Downstream, message)
    }
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            404,
            "model_not_found",
            Side::Downstream,
            format!("model `{}` does not exist or this key may not use it", printable(model)),
        )
    }
    /// Budget exhausted: SDKs must not retry (`x-should-retry: false`).
    pub fn quota(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(429, code, Side::Downstream, message).with_header("x-should-retry", "false")
    }
    /// A rate limit: retry after the given number of seconds.
    pub fn rate_limited(code: &'static str, message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(429, code, Side::Downstream, message).with_header("retry-after", retry_after_secs.max(1).to_string())
    }
    pub fn state_unavailable() -> Self {
        Self::new(503, "state_unavailable", Side::Internal, "the gateway's state backend is unavailable; retry shortly")
            .with_header("retry-after", "1")
    }
    pub fn upstream_unreachable(detail: impl fmt::Display) -> Self {
        Self::new(502, "upstream_unreachable", Side::Upstream, format!("upstream unreachable: {detail}"))
    }
    pub fn upstream_timeout() -> Self {
        Self::new(504, "upstream_timeout", Side::Upstream, "upstream did not answer in time")
    }
    pub fn upstream_invalid_response(detail: impl fmt::Display) -> Self {
        Self::new(
            502,
            "upstream_invalid_response",
            Side::Upstream,
            format!("upstream sent an invalid response: {detail}"),
        )
    }
    /// A translated provider's failure, in the OpenAI dialect (its status mapped by
    /// `core::ir::answered_status`; `retry-after` kept on 429 and 503).
    pub fn provider(e: &crate::core::ir::ProviderError) -> Self {
        let mut err = Self::new(e.status, e.code, Side::Upstream, e.message.clone());
        if let Some(secs) = e.retry_after_secs {
            err = err.with_header("retry-after", secs.to_string());
        }
        err
    }
    /// A parameter a translation refused (`unsupported_parameter`, `unsupported_value`,
    /// `invalid_parameter`), naming it.
    pub fn refused(code: &'static str, param: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, Side::Downstream, message).with_param(printable(param))
    }
    pub fn overloaded() -> Self {
        Self::new(503, "overloaded", Side::Internal, "the gateway is at its connection limit; retry shortly")
            .with_header("retry-after", "1")
    }
    pub fn draining() -> Self {
        Self::new(503, "draining", Side::Internal, "the gateway is shutting down; retry on another instance")
            .with_header("retry-after", "1")
    }
    /// Admin plane: no credential, or one that is not an admin secret.
    pub fn invalid_admin_credential(missing: bool) -> Self {
        let message = if missing {
            "this route needs an admin credential (Authorization: Bearer …)"
        } else {
            "the credential is not a valid admin credential"
        };
        Self::new(401, "invalid_api_key", Side::Downstream, message).with_header("www-authenticate", "Bearer")
    }
    /// A query parameter or body field that is wrong; names it.
    pub fn invalid_parameter(param: &str, message: impl Into<String>) -> Self {
        Self::new(400, "invalid_parameter", Side::Downstream, message).with_param(printable(param))
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(404, code, Side::Downstream, message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(409, code, Side::Downstream, message)
    }
    /// `If-Match` did not match the current version.
    pub fn version_mismatch(current: u64) -> Self {
        Self::new(
            412,
            "version_mismatch",
            Side::Downstream,
            format!("If-Match does not match; the current version is {current}"),
        )
        .with_header("etag", format!("\"{current}\""))
    }
    pub fn invalid_path(message: &str) -> Self {
        Self::new(400, "invalid_path", Side::Downstream, message)
    }
    pub fn loop_detected(message: String) -> Self {
        Self::new(508, "loop_detected", Side::Internal, message)
    }
    pub fn internal(detail: &str) -> Self {
        Self::new(500, "internal_error", Side::Internal, format!("internal error: {detail}"))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

/// Makes client-supplied text safe to echo in a message: bounded and without control characters.
fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(200).map(|c| if c.is_control() { '?' } else { c }).collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_an_openai_error_object() {
        let e = ApiError::invalid_json("EOF").with_param("messages");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "invalid_json");
        assert_eq!(v["error"]["param"], "messages");
        assert!(v["error"]["message"].as_str().unwrap().contains("EOF"));
    }

    #[test]
    fn types_follow_the_status_table() {
        let check = |e: ApiError, kind: &str| assert_eq!(e.kind(), kind, "{e}");
        check(ApiError::invalid_api_key(), "invalid_request_error");
        check(ApiError::new(403, "model_not_allowed", Side::Downstream, "x"), "permission_error");
        check(ApiError::new(429, "budget_exceeded", Side::Downstream, "x"), "insufficient_quota");
        check(ApiError::new(429, "rpm_limit_exceeded", Side::Downstream, "x"), "rate_limit_error");
        check(ApiError::upstream_timeout(), "api_error");
        check(ApiError::draining(), "api_error");
    }

    #[test]
    fn echoed_paths_are_bounded_and_printable() {
        let e = ApiError::route_not_found("GET", &format!("/x\u{1b}[31m{}", "a".repeat(500)));
        assert!(!e.message.contains('\u{1b}'));
        assert!(e.message.len() < 260);
    }
}
