//! Provider kinds, and what each kind does with the gateway's routes: the one closed-enum
//! dispatch the data plane, `prodex gateway providers` and the routing read (review.md §2.3).
//!
//! Invariants: an OpenAI-compatible provider serves every route untouched (passthrough); a
//! translating kind serves exactly the routes its protocol module lists, and every other route
//! is refused before anything reaches it; where the credential goes is decided here, once.

use crate::core::gemini;
use crate::core::ir::Credential;
use crate::core::route::Route;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI or any OpenAI-compatible server.
    OpenAi,
    Gemini,
    Anthropic,
}

/// The passthrough routes an OpenAI-compatible provider serves (as `providers` lists them).
pub const OPENAI_ROUTES: &[&str] = &[
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/models",
    "/v1/models/{id}",
    "/v1/images/*",
    "/v1/audio/*",
    "/v1/moderations",
    "/v1/files/*",
    "/v1/batches/*",
    "/v1/uploads/*",
];

impl ProviderKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Gemini => "gemini",
            Self::Anthropic => "anthropic",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "openai" => Some(Self::OpenAi),
            "gemini" => Some(Self::Gemini),
            "anthropic" => Some(Self::Anthropic),
            _ => None,
        }
    }

    /// Whether this kind serves `route` (OpenAI untouched, the others translated).
    #[must_use]
    pub fn serves(self, route: &Route) -> bool {
        match self {
            // `/v1/messages` to an OpenAI-compatible upstream needs the OpenAI egress translation.
            Self::OpenAi => !matches!(route, Route::Messages | Route::CountTokens),
            Self::Gemini => gemini::serves(route),
            Self::Anthropic => false,
        }
    }

    /// Whether calls to this kind are translated (never byte-for-byte passthrough).
    #[must_use]
    pub fn translates(self) -> bool {
        self != Self::OpenAi
    }

    /// Where the provider key goes.
    #[must_use]
    pub fn credential(self) -> Credential {
        match self {
            Self::OpenAi => Credential::Bearer,
            Self::Gemini => gemini::CREDENTIAL,
            Self::Anthropic => Credential::Header("x-api-key"),
        }
    }

    /// The routes this kind serves, as `providers` lists them.
    #[must_use]
    pub fn routes(self) -> Vec<&'static str> {
        match self {
            Self::OpenAi => OPENAI_ROUTES.to_vec(),
            Self::Gemini => gemini::ROUTES.iter().map(|(r, _)| r.split_once(' ').map_or(*r, |(_, p)| p)).collect(),
            Self::Anthropic => Vec::new(),
        }
    }
}

/// The provider a requested model goes to: the first whose `models` globs match it, else the
/// default. `providers` is (name, globs) in configuration order.
#[must_use]
pub fn route_model<'p>(
    providers: impl IntoIterator<Item = (&'p str, &'p [String])>,
    default: &'p str,
    model: Option<&str>,
) -> &'p str {
    let Some(m) = model else { return default };
    providers
        .into_iter()
        .find(|(_, globs)| globs.iter().any(|g| crate::core::model_matches(g, m)))
        .map_or(default, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_serves_its_routes_and_places_its_credential() {
        let routes = [
            Route::ChatCompletions,
            Route::Responses,
            Route::Embeddings,
            Route::Completions,
            Route::Models,
            Route::Messages,
            Route::Passthrough,
        ];
        let served = |k: ProviderKind| routes.iter().filter(|r| k.serves(r)).count();
        assert_eq!(served(ProviderKind::OpenAi), routes.len() - 1, "all but /v1/messages");
        assert_eq!(served(ProviderKind::Gemini), 5, "chat, responses, messages, embeddings, models");
        assert_eq!(served(ProviderKind::Anthropic), 0, "not in this build");
        assert!(!ProviderKind::Gemini.serves(&Route::Passthrough) && ProviderKind::Gemini.serves(&Route::CountTokens));
        assert_eq!(ProviderKind::Gemini.credential(), Credential::Header("x-goog-api-key"));
        assert_eq!(ProviderKind::OpenAi.credential(), Credential::Bearer);
        for k in [ProviderKind::OpenAi, ProviderKind::Gemini, ProviderKind::Anthropic] {
            assert_eq!(ProviderKind::parse(k.as_str()), Some(k));
        }
        assert!(ProviderKind::Gemini.routes().contains(&"/v1/responses"));
    }

    #[test]
    fn models_route_by_the_first_matching_glob_else_the_default() {
        let g = vec!["gemini-*".to_string()];
        let c = vec!["claude-*".to_string(), "gemini-2.5-pro".to_string()];
        let providers = [("gemini", g.as_slice()), ("anthropic", c.as_slice())];
        for (model, want) in [
            (Some("gemini-2.5-flash"), "gemini"),
            (Some("gemini-2.5-pro"), "gemini"),
            (Some("claude-sonnet-4"), "anthropic"),
            (Some("gpt-4o"), "openai"),
            (None, "openai"),
        ] {
            assert_eq!(route_model(providers, "openai", model), want, "{model:?}");
        }
    }
}
