//! Data-plane routes: which method and path is which route, which paths are refused before any
//! route sees them, and which passthrough families hold provider objects shared by every key.
//!
//! Invariants: classification is on the path exactly as the upstream will receive it (a path that
//! could mean two routes to a normalising server is refused, never rewritten); every route has one
//! name used in logs, metrics and the ledger.

/// A data-plane route, after the optional `/v1` prefix is removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    ChatCompletions,
    Responses,
    Embeddings,
    Completions,
    Models,
    Model(String),
    /// Anthropic-shaped `POST /v1/messages`.
    Messages,
    /// Anthropic-shaped `POST /v1/messages/count_tokens` (free: counts, generates nothing).
    CountTokens,
    /// Bodies and responses relayed untouched: images, audio, moderations, files, batches, …
    Passthrough,
}

impl Route {
    /// Short name used in logs, metrics and the ledger.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat.completions",
            Self::Responses => "responses",
            Self::Embeddings => "embeddings",
            Self::Completions => "completions",
            Self::Models | Self::Model(_) => "models",
            Self::Messages => "messages",
            Self::CountTokens => "messages.count_tokens",
            Self::Passthrough => "passthrough",
        }
    }

    /// Whether the response body is read for usage (and must then be valid JSON).
    #[must_use]
    pub fn meters_usage(&self) -> bool {
        matches!(self, Self::ChatCompletions | Self::Responses | Self::Embeddings | Self::Completions | Self::Messages)
    }
}

/// The shape a client speaks on a route: how its request is decoded when translated, and how
/// every error it gets is written (the gateway's own included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    OpenAiChat,
    OpenAiResponses,
    AnthropicMessages,
    /// Every other route: OpenAI-shaped (embeddings, models, passthrough families).
    OpenAi,
}

impl Dialect {
    /// Whether errors are Anthropic-shaped (`{"type":"error","error":{type,message}}`).
    #[must_use]
    pub fn anthropic(self) -> bool {
        self == Self::AnthropicMessages
    }
}

impl Route {
    #[must_use]
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::ChatCompletions => Dialect::OpenAiChat,
            Self::Responses => Dialect::OpenAiResponses,
            Self::Messages | Self::CountTokens => Dialect::AnthropicMessages,
            _ => Dialect::OpenAi,
        }
    }
}

/// Result of matching a method and path against the data-plane routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteMatch {
    /// The route and the path to append to the provider's base URL (e.g. `/chat/completions`).
    Found(Route, String),
    MethodNotAllowed(&'static str),
    NotFound,
}

/// Families relayed untouched, with the methods they take.
const PASSTHROUGH: &[(&str, &str)] = &[
    ("images", "POST"),
    ("audio", "POST"),
    ("moderations", "POST"),
    ("files", "GET, POST, DELETE"),
    ("batches", "GET, POST"),
    ("uploads", "POST"),
    ("responses", "GET, POST, DELETE"),
];

/// Why a request path is refused before any route sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadPath {
    /// A `.` or `..` segment, plain or percent-encoded.
    DotSegment,
    /// `%2F`, `%5C` or `\`: a separator a server or CDN may decode into another path.
    EncodedSeparator,
    /// `//`: an empty segment some servers collapse.
    EmptySegment,
}

impl BadPath {
    #[must_use]
    pub fn message(self) -> &'static str {
        match self {
            Self::DotSegment => "the path has a `.` or `..` segment",
            Self::EncodedSeparator => "the path has an encoded or backslash separator (%2F, %5C, \\)",
            Self::EmptySegment => "the path has an empty segment (//)",
        }
    }
}

/// Checks that `path` (without query) means one thing to every server on the way: what is
/// classified is exactly what the upstream receives, so no dot segment or encoded separator may
/// let an upstream or CDN that normalises paths reach another route than the one admitted.
pub fn check_path(path: &str) -> Result<(), BadPath> {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\') {
        return Err(BadPath::EncodedSeparator);
    }
    let segments = lower.split('/').count();
    for (i, segment) in lower.split('/').enumerate() {
        let decoded = segment.replace("%2e", ".");
        if decoded == "." || decoded == ".." {
            return Err(BadPath::DotSegment);
        }
        if segment.is_empty() && i > 0 && i + 1 < segments {
            return Err(BadPath::EmptySegment);
        }
    }
    Ok(())
}

/// Whether a passthrough `suffix` (as `classify` returns it) reaches shared provider objects
/// (uploaded files, batches, uploads, stored responses: one key could read or delete another's).
#[must_use]
pub fn holds_objects(suffix: &str) -> bool {
    let family = suffix.trim_start_matches('/').split('/').next().unwrap_or("");
    crate::core::objects::FAMILIES.contains(&family)
}

/// Matches `method path` (path without query) to a data-plane route.
#[must_use]
pub fn classify(method: &str, path: &str) -> RouteMatch {
    let rest = path.strip_prefix("/v1").filter(|r| r.is_empty() || r.starts_with('/')).unwrap_or(path);
    let fixed = |route: Route, allow: &'static str| {
        if allow.split(", ").any(|m| m == method) || (method == "HEAD" && allow.contains("GET")) {
            RouteMatch::Found(route, rest.to_string())
        } else {
            RouteMatch::MethodNotAllowed(allow)
        }
    };
    match rest {
        "/chat/completions" => return fixed(Route::ChatCompletions, "POST"),
        "/responses" => return fixed(Route::Responses, "POST"),
        "/embeddings" => return fixed(Route::Embeddings, "POST"),
        "/completions" => return fixed(Route::Completions, "POST"),
        "/models" => return fixed(Route::Models, "GET"),
        "/messages" => return fixed(Route::Messages, "POST"),
        "/messages/count_tokens" => return fixed(Route::CountTokens, "POST"),
        _ => {}
    }
    if let Some(id) = rest.strip_prefix("/models/").filter(|id| !id.is_empty()) {
        return fixed(Route::Model(id.to_string()), "GET");
    }
    let family = rest.trim_start_matches('/').split('/').next().unwrap_or("");
    match PASSTHROUGH.iter().find(|(f, _)| *f == family) {
        Some((_, allow)) => fixed(Route::Passthrough, allow),
        None => RouteMatch::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_routes_are_the_shared_account_families() {
        for (suffix, shared) in [
            ("/files", true),
            ("/files/file-1/content", true),
            ("/batches/b1", true),
            ("/uploads", true),
            ("/responses/resp_1", true),
            ("/images/generations", false),
            ("/audio/speech", false),
            ("/moderations", false),
        ] {
            assert_eq!(holds_objects(suffix), shared, "{suffix}");
        }
    }

    #[test]
    fn paths_that_could_mean_two_routes_are_refused() {
        for (path, want) in [
            ("/v1/chat/completions", Ok(())),
            ("/v1/models/gpt-4o-mini", Ok(())),
            ("/v1/files/file-1/content", Ok(())),
            ("/v1/models/ft:gpt-4o:org:x:1", Ok(())),
            ("/", Ok(())),
            ("/v1/models/", Ok(())),
            ("/v1/models/gpt-4o-mini/../../files", Err(BadPath::DotSegment)),
            ("/v1/images/../chat/completions", Err(BadPath::DotSegment)),
            ("/v1/./chat/completions", Err(BadPath::DotSegment)),
            ("/v1/images/%2e%2E/chat/completions", Err(BadPath::DotSegment)),
            ("/v1/images/.%2e/chat/completions", Err(BadPath::DotSegment)),
            ("/v1/images/..", Err(BadPath::DotSegment)),
            ("/v1/models/a%2Fb", Err(BadPath::EncodedSeparator)),
            ("/v1/models/a%5cb", Err(BadPath::EncodedSeparator)),
            ("/v1/images\\..\\chat", Err(BadPath::EncodedSeparator)),
            ("/v1//chat/completions", Err(BadPath::EmptySegment)),
            ("/v1/models/..x", Ok(())),
        ] {
            assert_eq!(check_path(path), want, "{path}");
        }
    }

    #[test]
    fn routes_match_with_and_without_v1() {
        let found = |r: Route, s: &str| RouteMatch::Found(r, s.to_string());
        let cases = [
            ("POST", "/v1/chat/completions", found(Route::ChatCompletions, "/chat/completions")),
            ("POST", "/chat/completions", found(Route::ChatCompletions, "/chat/completions")),
            ("GET", "/v1/chat/completions", RouteMatch::MethodNotAllowed("POST")),
            ("POST", "/v1/responses", found(Route::Responses, "/responses")),
            ("GET", "/v1/responses/resp_1", found(Route::Passthrough, "/responses/resp_1")),
            ("POST", "/v1/embeddings", found(Route::Embeddings, "/embeddings")),
            ("GET", "/v1/models", found(Route::Models, "/models")),
            ("HEAD", "/v1/models", found(Route::Models, "/models")),
            ("GET", "/v1/models/gpt-4o", found(Route::Model("gpt-4o".into()), "/models/gpt-4o")),
            ("POST", "/v1/messages", found(Route::Messages, "/messages")),
            ("POST", "/v1/messages/count_tokens", found(Route::CountTokens, "/messages/count_tokens")),
            ("POST", "/v1/images/generations", found(Route::Passthrough, "/images/generations")),
            ("POST", "/v1/audio/transcriptions", found(Route::Passthrough, "/audio/transcriptions")),
            ("GET", "/v1/files/file-1/content", found(Route::Passthrough, "/files/file-1/content")),
            ("DELETE", "/v1/images/x", RouteMatch::MethodNotAllowed("POST")),
            ("GET", "/v1/nope", RouteMatch::NotFound),
            ("GET", "/v1x/models", RouteMatch::NotFound),
            ("GET", "/", RouteMatch::NotFound),
        ];
        for (method, path, want) in cases {
            assert_eq!(classify(method, path), want, "{method} {path}");
        }
    }
}
