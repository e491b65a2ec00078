//! Provider kinds, and what each kind does with the gateway's routes: the one closed-enum
//! dispatch the data plane and `prodex gateway providers` read (review.md §2.3); which provider
//! a model goes to is `core::routing`'s.
//!
//! Invariants: an OpenAI-compatible provider serves every route untouched (passthrough); a
//! translating kind serves exactly the routes its protocol module lists, and every other route
//! is refused before anything reaches it; where the credential goes is decided here, once.

use crate::core::{anthropic, gemini, mock, openai};
use serde_json::Value;

use crate::core::ir::{self, Credential, Feature, Outbound, ProviderError, Unsupported};
use crate::core::route::Route;
use crate::core::usage::UsageRead;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI or any OpenAI-compatible server.
    OpenAi,
    Gemini,
    Anthropic,
    /// The built-in mock (`core::mock`): answered in process, no upstream.
    Mock,
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
    "/v1/messages",
    "/v1/messages/count_tokens",
];

impl ProviderKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Gemini => "gemini",
            Self::Anthropic => "anthropic",
            Self::Mock => "mock",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "openai" => Some(Self::OpenAi),
            "gemini" => Some(Self::Gemini),
            "anthropic" => Some(Self::Anthropic),
            "mock" => Some(Self::Mock),
            _ => None,
        }
    }

    /// Whether this kind serves `route` (OpenAI untouched, the others translated).
    #[must_use]
    pub fn serves(self, route: &Route) -> bool {
        match self {
            Self::OpenAi => true,
            // A translating kind serves exactly the routes its table lists.
            Self::Gemini | Self::Anthropic | Self::Mock => {
                route_line(route).is_some_and(|line| self.route_table().iter().any(|(r, _)| *r == line))
            }
        }
    }

    /// Whether a call on `route` to this kind is translated (else it passes byte for byte: the
    /// OpenAI routes to an OpenAI-compatible server, `/v1/messages` and its count to Anthropic).
    #[must_use]
    pub fn translates(self, route: &Route) -> bool {
        match self {
            Self::OpenAi => matches!(route, Route::Messages | Route::CountTokens),
            Self::Gemini | Self::Mock => true,
            Self::Anthropic => !matches!(route, Route::Messages | Route::CountTokens),
        }
    }

    /// Where the provider key goes.
    #[must_use]
    pub fn credential(self) -> Credential {
        match self {
            Self::OpenAi | Self::Mock => Credential::Bearer,
            Self::Gemini => gemini::CREDENTIAL,
            Self::Anthropic => anthropic::CREDENTIAL,
        }
    }

    /// What each served route becomes (empty for OpenAI-compatible: everything passes).
    #[must_use]
    pub fn route_table(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::OpenAi => openai::egress::ROUTES,
            Self::Gemini => gemini::ROUTES,
            Self::Anthropic => anthropic::ROUTES,
            Self::Mock => mock::ROUTES,
        }
    }

    /// Intermediate-form features this kind never honours, and why (`providers --json`).
    #[must_use]
    pub fn refused(self) -> &'static [(Feature, &'static str)] {
        match self {
            Self::OpenAi => openai::egress::REFUSED,
            Self::Gemini => gemini::REFUSED,
            Self::Anthropic => anthropic::REFUSED,
            Self::Mock => &[],
        }
    }

    /// The routes this kind serves, as `providers` lists them.
    #[must_use]
    pub fn routes(self) -> Vec<&'static str> {
        match self {
            Self::OpenAi => OPENAI_ROUTES.to_vec(),
            Self::Gemini | Self::Anthropic | Self::Mock => paths(self.route_table()),
        }
    }
}

/// What a translated call does at each kind of provider: the one dispatch the shell calls, so it
/// names no protocol module (an OpenAI-compatible server is translated to only from `/v1/messages`).
impl ProviderKind {
    /// Every refusal the egress would make, before admission.
    pub fn check(self, req: &ir::Request) -> Result<(), Unsupported> {
        match self {
            Self::Gemini => gemini::request::check(req),
            Self::Anthropic => anthropic::request::check(req),
            Self::OpenAi => openai::egress::encode(req).map(|_| ()),
            // The mock answers every request it can decode.
            Self::Mock => Ok(()),
        }
    }

    /// The generation request (`req.model` is the provider's model name).
    pub fn generate_request(self, req: &ir::Request) -> Result<Outbound, Unsupported> {
        match self {
            Self::Gemini => gemini::generate_request(req, &req.model),
            Self::Anthropic => anthropic::generate_request(req),
            Self::OpenAi => Ok(Outbound {
                method: "POST",
                target: "/chat/completions".into(),
                body: Some(openai::egress::encode(req)?.to_string().into_bytes()),
            }),
            Self::Mock => Err(Unsupported {
                feature: Feature::Media,
                index: None,
                param: Some("model".into()),
                why: "the mock provider answers in process and sends nothing upstream".into(),
            }),
        }
    }

    /// Whether remote media must be fetched into the request (Gemini), or the provider fetches
    /// URLs itself (Anthropic's URL sources, OpenAI's image URLs).
    #[must_use]
    pub fn fetches_media(self) -> bool {
        self == Self::Gemini
    }

    /// The usage of a whole answer.
    #[must_use]
    pub fn usage(self, body: &Value) -> Option<UsageRead> {
        match self {
            Self::Gemini => gemini::response::usage(body),
            Self::Anthropic => anthropic::response::usage(body),
            Self::OpenAi | Self::Mock => crate::core::openai::response_usage(body),
        }
    }

    /// A whole answer as the intermediate response.
    pub fn decode(self, body: &Value, model: &str, fallback_id: &str) -> Result<ir::Response, ProviderError> {
        match self {
            Self::Gemini => gemini::response::decode(body, model, fallback_id),
            Self::Anthropic => anthropic::response::decode(body, model, fallback_id),
            Self::OpenAi | Self::Mock => openai::egress::decode(body, model, fallback_id),
        }
    }

    /// A reader of this kind's stream.
    #[must_use]
    pub fn stream_decoder(self) -> Box<dyn ir::StreamDecoder> {
        match self {
            Self::Anthropic => Box::new(anthropic::response::StreamDecoder::default()),
            Self::Gemini => Box::new(gemini::response::StreamDecoder::default()),
            Self::OpenAi | Self::Mock => Box::new(openai::egress::StreamDecoder::default()),
        }
    }

    /// An error answer (`status`, body, `retry-after`) as the client's error (a body that is not
    /// JSON keeps the status and gets a stand-in message).
    #[must_use]
    pub fn error(self, status: u16, body: &[u8], retry_after: Option<&str>) -> ProviderError {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match self {
            Self::Anthropic => anthropic::response::error_value(status, &parsed, retry_after),
            Self::Gemini => gemini::error_value(status, &parsed, retry_after),
            Self::OpenAi | Self::Mock => openai::egress::error_value(status, &parsed, retry_after),
        }
    }
}

/// A route as the protocol tables write it (`POST /v1/messages`); `None` for passthrough.
fn route_line(route: &Route) -> Option<&'static str> {
    Some(match route {
        Route::ChatCompletions => "POST /v1/chat/completions",
        Route::Responses => "POST /v1/responses",
        Route::Messages => "POST /v1/messages",
        Route::CountTokens => "POST /v1/messages/count_tokens",
        Route::Embeddings => "POST /v1/embeddings",
        Route::Completions => "POST /v1/completions",
        Route::Models => "GET /v1/models",
        Route::Model(_) => "GET /v1/models/{id}",
        Route::Passthrough => return None,
    })
}

fn paths(routes: &[(&'static str, &str)]) -> Vec<&'static str> {
    routes.iter().map(|(r, _)| r.split_once(' ').map_or(*r, |(_, p)| p)).collect()
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
        assert_eq!(served(ProviderKind::OpenAi), routes.len(), "every route, /v1/messages translated");
        assert!(
            ProviderKind::OpenAi.translates(&Route::Messages) && ProviderKind::OpenAi.translates(&Route::CountTokens)
        );
        assert_eq!(served(ProviderKind::Gemini), 5, "chat, responses, messages, embeddings, models");
        assert_eq!(served(ProviderKind::Anthropic), 4, "chat, responses, messages, models");
        assert!(
            ProviderKind::Anthropic.serves(&Route::CountTokens) && !ProviderKind::Anthropic.serves(&Route::Embeddings)
        );
        assert!(
            !ProviderKind::Anthropic.translates(&Route::Messages)
                && ProviderKind::Anthropic.translates(&Route::Responses)
        );
        assert!(
            ProviderKind::Gemini.translates(&Route::Messages)
                && !ProviderKind::OpenAi.translates(&Route::ChatCompletions)
        );
        assert_eq!(ProviderKind::Anthropic.credential(), Credential::Header("x-api-key"));
        for k in [ProviderKind::Gemini, ProviderKind::Anthropic] {
            let listed = k.routes();
            for r in &routes {
                let path = match r {
                    Route::ChatCompletions => "/v1/chat/completions",
                    Route::Responses => "/v1/responses",
                    Route::Embeddings => "/v1/embeddings",
                    Route::Models => "/v1/models",
                    Route::Messages => "/v1/messages",
                    _ => continue,
                };
                assert_eq!(k.serves(r), listed.contains(&path), "{k:?} {path}: the table and the dispatch agree");
            }
        }
        assert!(!ProviderKind::Gemini.serves(&Route::Passthrough) && ProviderKind::Gemini.serves(&Route::CountTokens));
        assert_eq!(ProviderKind::Gemini.credential(), Credential::Header("x-goog-api-key"));
        assert_eq!(ProviderKind::OpenAi.credential(), Credential::Bearer);
        for k in [ProviderKind::OpenAi, ProviderKind::Gemini, ProviderKind::Anthropic] {
            assert_eq!(ProviderKind::parse(k.as_str()), Some(k));
        }
        assert!(ProviderKind::Gemini.routes().contains(&"/v1/responses"));
    }
}
