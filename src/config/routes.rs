//! `[[gateway.route_aliases]]` and the routing table's checks: aliases read and validated, globs
//! two providers claim, and providers calls can reach without the key they need.

use super::policy::{Diagnostics, Section};
use super::{Provider, ProviderKind, RouteAlias, RouteStrategy};

pub(super) fn read_aliases(
    gw: &mut Section<'_, '_>,
    d: &mut Diagnostics<'_>,
    providers: &[Provider],
    models_at: &[(String, usize, String)],
) -> Vec<RouteAlias> {
    let mut out: Vec<RouteAlias> = Vec::new();
    for mut s in gw.tables(d, "route_aliases") {
        let alias = s.string(d, "alias");
        let models = s.string_list(d, "models").unwrap_or_default();
        let strategy = match s.string(d, "strategy").as_deref() {
            None => RouteStrategy::Fallback,
            Some(name) => RouteStrategy::parse(name).unwrap_or_else(|| {
                d.error_at(
                    s.offset_of("strategy"),
                    &format!("{}.strategy", s.path),
                    "expected fallback, round-robin, first, least-busy, lowest-cost or lowest-latency",
                );
                RouteStrategy::Fallback
            }),
        };
        let max_attempts = s.uint(d, "max_attempts").map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        if max_attempts == Some(0) {
            d.error_at(s.offset_of("max_attempts"), &format!("{}.max_attempts", s.path), "must be at least 1");
        }
        if models.is_empty() {
            d.error_at(s.offset_of("models"), &format!("{}.models", s.path), "needs at least one model");
        }
        for m in &models {
            if m.contains('*') {
                d.error_at(
                    s.offset_of("models"),
                    &format!("{}.models", s.path),
                    format!("`{m}`: an alias names models, not globs"),
                );
            }
        }
        match alias {
            Some(name) if out.iter().any(|a| a.name == name) => {
                d.error_at(s.offset_of("alias"), &format!("{}.alias", s.path), format!("`{name}` is defined twice"));
            }
            Some(name) if models.contains(&name) => {
                d.error_at(s.offset_of("alias"), &format!("{}.alias", s.path), format!("`{name}` lists itself"));
            }
            Some(name) => out.push(RouteAlias { name, models, strategy, max_attempts }),
            None => d.error_at(s.offset_of("alias"), &format!("{}.alias", s.path), "is required"),
        }
        s.finish(d);
    }
    // A model two providers both claim could go to either: the routing table must be one answer.
    let globs = super::model_globs(providers);
    for (glob, a, b) in crate::core::routing::ambiguities(&globs) {
        let (first, second) = (&providers[a].name, &providers[b].name);
        let at =
            models_at.iter().find(|(n, _, _)| n == second).or_else(|| models_at.iter().find(|(n, _, _)| n == first));
        let (offset, key) = at.map_or((0, "gateway.providers.models".to_string()), |(_, o, k)| (*o, k.clone()));
        d.error_at(
            offset,
            &key,
            format!("`{glob}` is claimed by providers {first} and {second}: a model it matches could go to either"),
        );
    }
    out
}

/// A provider calls can reach (the default, one with models, or one an alias routes to) with no
/// key: Gemini and Anthropic refuse every such call; an OpenAI-compatible server may need none
/// (a local vLLM or Ollama), but OpenAI itself does (F1).
pub(super) fn keyless_notices(
    providers: &[Provider],
    provider_name: &str,
    route_aliases: &[RouteAlias],
) -> Vec<String> {
    let mut out = Vec::new();
    let globs = super::model_globs(providers);
    let default_at = providers.iter().position(|p| p.name == provider_name);
    for (i, p) in providers.iter().enumerate() {
        let aliased = route_aliases
            .iter()
            .flat_map(|a| &a.models)
            .any(|m| default_at.is_some_and(|d| crate::core::routing::provider_of(&globs, d, m) == i));
        let reached = Some(i) == default_at || !p.models.is_empty() || aliased;
        if !reached || !p.api_keys.is_empty() || p.kind == ProviderKind::Mock {
            continue;
        }
        let env = super::BUILTIN_PROVIDERS
            .iter()
            .find(|b| b.0 == p.name)
            .and_then(|b| b.4.get(1).or(b.4.first()))
            .map_or_else(|| "its api_key_env".to_string(), |e| (*e).to_string());
        if p.kind == ProviderKind::OpenAi {
            out.push(format!(
                "provider {} has no API key (set {env}): its calls go upstream without a credential, which only a server that needs none accepts",
                p.name
            ));
        } else {
            out.push(format!(
                "provider {} (kind {}) has no API key (set {env}): the calls routed to it will be refused by {}",
                p.name,
                p.kind.as_str(),
                p.kind.as_str()
            ));
        }
    }
    out
}
