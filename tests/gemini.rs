//! The Gemini bridge end to end: the real binary started as the seed page says
//! (`--provider gemini`, `GEMINI_API_KEY`) in front of the mock's Gemini dialect, driven over TCP.

use serde_json::{json, Value};

use crate::support::admin::row_of;
use crate::support::client::Response;
use crate::support::mock::{gemini::SIGNATURE, Mock};
use crate::support::{Gateway, Opts};

const MASTER: &str = "master-token-gemini-0123456789";

fn bridge(mock: &Mock, keys: &str) -> Gateway {
    Gateway::start(Opts {
        base_url: Some(format!("http://{}/v1beta", mock.addr)),
        args: vec!["--provider", "gemini"],
        env: vec![("PRODEX_GATEWAY_TOKEN", MASTER.into()), ("GEMINI_API_KEYS", keys.into())],

        ..Opts::default()
    })
}

fn post(gw: &Gateway, path: &str, body: &Value, extra: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {MASTER}");
    let mut h = vec![("authorization", auth.as_str())];
    h.extend_from_slice(extra);
    gw.post_json(path, &h, body)
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]})
}

/// The `data:` payloads of an SSE body.
fn datas(r: &Response) -> Vec<String> {
    r.text().split("\n\n").filter_map(|f| f.strip_prefix("data: ")).map(str::to_string).collect()
}

#[test]
fn chat_completions_are_translated_both_ways_and_billed_as_gemini() {
    let mock = Mock::start();
    let gw = bridge(&mock, "gk-one");
    let r = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gemini-2.5-flash", "user": "u-1", "max_tokens": 50,
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from gemini");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 2}})
    );
    assert_eq!(r.header("x-prodex-ignored-params"), Some("user"));
    assert!(r.header("x-prodex-cost-usd").is_some());

    let seen = mock.requests();
    let up = seen.last().unwrap();
    assert_eq!(up.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(up.header("x-goog-api-key"), Some("gk-one"), "the provider key travels in x-goog-api-key");
    assert!(up.header("authorization").is_none(), "the client's credential never reaches the upstream");
    let sent = up.json();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be terse.");
    assert_eq!(sent["contents"], json!([{"role": "user", "parts": [{"text": "hi"}]}]));
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 50);

    let row = row_of(&gw, MASTER, &r);
    assert_eq!(row["provider"], "gemini");
    assert_eq!(row["upstream_model"], "gemini-2.5-flash");
    assert_eq!(row["route"], "chat.completions");
    assert_eq!(row["usage_source"], "provider");
    assert_eq!((row["input_tokens"].as_u64(), row["cached_input_tokens"].as_u64()), (Some(11), Some(3)));
    assert_eq!((row["output_tokens"].as_u64(), row["reasoning_tokens"].as_u64()), (Some(7), Some(2)));
    assert!(row["cost_microusd"].as_u64().unwrap() > 0, "gemini-2.5-flash is priced: {row}");
}

#[test]
fn streams_are_relayed_chunk_by_chunk_with_the_exact_openai_sequence() {
    let mock = Mock::start();
    let gw = bridge(&mock, "gk-one");
    for (include_usage, crlf) in [(true, "0"), (false, "1")] {
        let mut body = chat("gemini-2.5-flash");
        body["stream"] = json!(true);
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let r = post(&gw, "/v1/chat/completions", &body, &[("x-mock-chunks", "3"), ("x-mock-crlf", crlf)]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
        let d = datas(&r);
        assert_eq!(d.last().map(String::as_str), Some("[DONE]"), "{d:?}");
        let chunks: Vec<Value> = d[..d.len() - 1].iter().map(|s| serde_json::from_str(s).unwrap()).collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "tok0 tok1 tok2 ");
        let finish: Vec<&Value> =
            chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
        assert_eq!(finish, [&json!("stop")]);
        if include_usage {
            let last = chunks.last().unwrap();
            assert_eq!(last["choices"], json!([]));
            assert_eq!(last["usage"]["completion_tokens"], 7, "the last cumulative usage (5 + 2 thoughts)");
        } else {
            assert!(!r.text().contains("\"usage\""), "no usage for a client that did not ask");
        }
        assert!(mock.requests().last().unwrap().path.ends_with(":streamGenerateContent?alt=sse"));
        let row = row_of(&gw, MASTER, &r);
        assert_eq!((row["stream"].as_bool(), row["usage_source"].as_str()), (Some(true), Some("provider")));
        assert_eq!(row["output_tokens"].as_u64(), Some(7), "metered whether or not the client asked for usage");
    }
}

#[test]
fn tool_calls_keep_distinct_indexes_and_their_signature_survives_the_round_trip() {
    let mock = Mock::start();
    let gw = bridge(&mock, "gk-one");
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]);
    for stream in [false, true] {
        let mut body = chat("gemini-3-pro-preview");
        body["tools"] = tools.clone();
        body["stream"] = json!(stream);
        let r = post(&gw, "/v1/chat/completions", &body, &[("x-mock-gemini", "tools")]);
        assert_eq!(r.status, 200, "{}", r.text());
        let calls: Vec<Value> = if stream {
            let d = datas(&r);
            let chunks: Vec<Value> =
                d.iter().filter(|s| *s != "[DONE]").map(|s| serde_json::from_str(s).unwrap()).collect();
            let finish: Vec<&Value> =
                chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
            assert_eq!(finish, [&json!("tool_calls")], "STOP after calls in earlier chunks is tool_calls");
            chunks
                .iter()
                .flat_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array().cloned().unwrap_or_default())
                .collect()
        } else {
            assert_eq!(r.json()["choices"][0]["finish_reason"], "tool_calls");
            r.json()["choices"][0]["message"]["tool_calls"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut c = c.clone();
                    c["index"] = json!(i);
                    c
                })
                .collect()
        };
        assert_eq!(calls.len(), 2);
        assert_eq!((calls[0]["index"].as_u64(), calls[1]["index"].as_u64()), (Some(0), Some(1)));
        assert_ne!(calls[0]["id"], calls[1]["id"]);
        assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        // The client echoes back only standard fields; the mock (as Gemini 3 does) refuses the
        // replay unless the first call carries its signature.
        let mut history = chat("gemini-3-pro-preview");
        history["tools"] = tools.clone();
        let assistant = json!({"role": "assistant", "content": null, "tool_calls": calls.iter().map(|c| json!({
            "id": c["id"], "type": "function", "function": c["function"]})).collect::<Vec<_>>()});
        let msgs = history["messages"].as_array_mut().unwrap();
        msgs.push(assistant);
        msgs.push(json!({"role": "tool", "tool_call_id": calls[0]["id"], "content": "22C"}));
        msgs.push(json!({"role": "tool", "tool_call_id": calls[1]["id"], "content": "10:00"}));
        let r = post(&gw, "/v1/chat/completions", &history, &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        let sent = mock.requests().last().unwrap().json();
        assert_eq!(sent["contents"][1]["parts"][0]["thoughtSignature"], SIGNATURE);
        assert!(sent["contents"][1]["parts"][1].get("thoughtSignature").is_none());
        assert_eq!(sent["contents"][2]["parts"].as_array().unwrap().len(), 2, "both results in one user turn");
        assert_eq!(sent["contents"][2]["parts"][1]["functionResponse"]["name"], "get_time");
    }
}

#[test]
fn untranslatable_parameters_are_refused_by_name_before_the_provider_is_called() {
    let mock = Mock::start();
    let gw = bridge(&mock, "gk-one");
    for (extra, param) in [
        (json!({"logit_bias": {"1": 2}}), "logit_bias"),
        (json!({"parallel_tool_calls": false}), "parallel_tool_calls"),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}),
            "messages[0].content[0].image_url.url",
        ),
    ] {
        let mut body = chat("gemini-2.5-flash");
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = post(&gw, "/v1/chat/completions", &body, &[]);
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.json()["error"]["param"], param);
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    }
    let r = post(&gw, "/v1/chat/completions", &chat("../files"), &[]);
    assert_eq!((r.status, r.json()["error"]["param"].as_str()), (400, Some("model")));
    assert_eq!(mock.count(), 0, "nothing reached the provider");
    let r = post(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "hi", "previous_response_id": "resp_1"}),
        &[],
    );
    assert_eq!((r.status, r.json()["error"]["param"].as_str()), (400, Some("previous_response_id")), "{}", r.text());
    assert_eq!(mock.count(), 0, "nothing reached the provider");
    let r = post(&gw, "/v1/images/generations", &json!({"model": "gemini-2.5-flash", "prompt": "x"}), &[]);
    assert_eq!((r.status, r.code().as_str()), (400, "unsupported_route"), "{}", r.text());
    // On /v1/messages every error is Anthropic-shaped, the gateway's own included.
    let r = post(&gw, "/v1/messages", &json!({"model": "gemini-2.5-flash", "max_tokens": 5, "messages": []}), &[]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("`messages` must be a non-empty array"));
    let r = gw.post_json(
        "/v1/messages",
        &[("x-api-key", "not-a-key")],
        &json!({"model": "m", "max_tokens": 1, "messages": []}),
    );
    assert_eq!((r.status, r.json()["error"]["type"].as_str()), (401, Some("authentication_error")), "{}", r.text());
    assert!(r.json().get("error").and_then(|e| e.get("code")).is_none(), "no OpenAI fields in an Anthropic error");
}

#[test]
fn provider_errors_become_openai_errors_and_429_rotates_the_key_pool() {
    let mock = Mock::start();
    let gw = bridge(&mock, "gk-one,gk-two");
    let r = post(&gw, "/v1/chat/completions", &chat("gemini-2.5-flash"), &[("x-mock-status", "400")]);
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "invalid_argument");
    assert!(
        r.json()["error"]["message"].as_str().unwrap().contains("mock gemini error 400"),
        "the provider's message is kept"
    );
    let row = row_of(&gw, MASTER, &r);
    assert_eq!((row["status"].as_u64(), row["usage_source"].as_str()), (Some(400), Some("none")));

    let r = post(&gw, "/v1/chat/completions", &chat("gemini-2.5-flash"), &[("x-mock-status", "500")]);
    assert_eq!((r.status, r.code().as_str()), (502, "upstream_error"), "5xx becomes 502 after the retries");

    // One key of the pool is out of quota: the next attempt goes to the other key.
    let before = mock.count();
    let r = post(&gw, "/v1/chat/completions", &chat("gemini-2.5-flash"), &[("x-mock-429-key", "gk-one")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let keys: Vec<String> =
        mock.requests()[before..].iter().map(|s| s.header("x-goog-api-key").unwrap().to_string()).collect();
    assert!(keys.last().is_some_and(|k| k == "gk-two"), "{keys:?}");

    let mock1 = Mock::start();
    let gw1 = bridge(&mock1, "gk-one");
    let r = post(&gw1, "/v1/chat/completions", &chat("gemini-2.5-flash"), &[("x-mock-429-key", "gk-one")]);
    assert_eq!((r.status, r.code().as_str()), (429, "resource_exhausted"));
    assert_eq!(r.header("retry-after"), Some("2"), "Gemini's RetryInfo delay becomes retry-after");

    for (mode, code) in [("blocked", None), ("malformed-call", Some("upstream_malformed_function_call"))] {
        let r = post(&gw, "/v1/chat/completions", &chat("gemini-2.5-flash"), &[("x-mock-gemini", mode)]);
        match code {
            None => {
                assert_eq!(r.status, 200, "{}", r.text());
                assert_eq!(r.json()["choices"][0]["finish_reason"], "content_filter");
            }
            Some(code) => assert_eq!((r.status, r.code()), (502, code.to_string())),
        }
    }
}

#[test]
fn a_stream_that_fails_ends_with_an_error_event_and_no_done() {
    let mock = Mock::start();
    let gw = bridge(&mock, "gk-one");
    for (mode, code) in [("stream-error", "upstream_error"), ("cut", "upstream_stream_broken")] {
        let mut body = chat("gemini-2.5-flash");
        body["stream"] = json!(true);
        let r = post(&gw, "/v1/chat/completions", &body, &[("x-mock-gemini", mode)]);
        assert_eq!(r.status, 200);
        let d = datas(&r);
        assert!(!d.iter().any(|s| s == "[DONE]"), "{d:?}");
        let err: Value = serde_json::from_str(d.last().unwrap()).unwrap();
        assert_eq!(err["error"]["code"], code, "{mode}: {d:?}");
        let row = row_of(&gw, MASTER, &r);
        assert_eq!(row["error_code"], code);
        assert_ne!(row["usage_source"], "none", "what was generated is billed: {row}");
    }
}

#[test]
fn embeddings_are_batched_at_100_and_models_are_listed_in_openai_shape() {
    let mock = Mock::start();
    let gw = bridge(&mock, "gk-one");
    let inputs: Vec<String> = (0..150).map(|i| format!("text {i}")).collect();
    for (format, usage) in [("float", "reported"), ("base64", "none")] {
        let before = mock.count();
        let r = post(
            &gw,
            "/v1/embeddings",
            &json!({"model": "gemini-embedding-001", "input": inputs, "encoding_format": format, "dimensions": 2}),
            &[("x-mock-usage", usage)],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let data = r.json()["data"].as_array().unwrap().clone();
        assert_eq!(data.len(), 150);
        assert_eq!(mock.count() - before, 2, "150 inputs are two batches");
        assert_eq!(data[149]["index"], 149);
        if format == "float" {
            assert_eq!(data[100]["embedding"], json!([0.25, 1.25]), "the second batch starts over in the mock");
            assert_eq!(r.json()["usage"]["prompt_tokens"], 300);
            assert_eq!(row_of(&gw, MASTER, &r)["usage_source"], "provider");
        } else {
            assert!(data[0]["embedding"].is_string());
            assert_eq!(
                row_of(&gw, MASTER, &r)["usage_source"],
                "estimated",
                "no usage from Gemini: estimated, never 0"
            );
        }
    }
    let r = gw.get_with("/v1/models", &[("authorization", &format!("Bearer {MASTER}"))]);
    let ids = |r: &Response| -> Vec<String> {
        r.json()["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(&r), ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-embedding-001"], "both pages");
    let token = crate::support::admin::create_key(
        &gw,
        MASTER,
        &json!({"name": "flash-only", "allowed_models": ["gemini-2.5-flash", "gemini-embedding-*"]}),
    );
    let r = gw.get_with("/v1/models", &[("authorization", &format!("Bearer {token}"))]);
    assert_eq!(ids(&r), ["gemini-2.5-flash", "gemini-embedding-001"], "filtered by the key's allowlist");
    let r = gw.get_with("/v1/models/gemini-2.5-pro", &[("authorization", &format!("Bearer {token}"))]);
    assert_eq!(r.status, 404, "a model outside the allowlist does not exist for the key");
    let r = gw.get_with("/v1/models/gemini-2.5-pro", &[("authorization", &format!("Bearer {MASTER}"))]);
    assert_eq!(r.json(), json!({"id": "gemini-2.5-pro", "object": "model", "created": 0, "owned_by": "google"}));
    let r = gw.get_with("/v1/models/nope", &[("authorization", &format!("Bearer {MASTER}"))]);
    assert_eq!((r.status, r.code().as_str()), (404, "model_not_found"));
}

/// `providers --json` lists every chat parameter's handling, and the running bridge does what it says.
#[test]
fn the_provider_listing_says_what_the_bridge_does_with_each_parameter() {
    let list = crate::support::providers_json();
    let gemini = list.as_array().unwrap().iter().find(|p| p["kind"] == "gemini").unwrap();
    assert_eq!(
        gemini["routes"],
        json!([
            "/v1/chat/completions",
            "/v1/responses",
            "/v1/messages",
            "/v1/messages/count_tokens",
            "/v1/embeddings",
            "/v1/models",
            "/v1/models/{id}"
        ])
    );
    let params = gemini["translation"]["parameters"]["chat.completions"].as_array().unwrap();
    let handling =
        |name: &str| params.iter().find(|p| p["name"] == name).map(|p| p["handling"].as_str().unwrap().to_string());
    assert_eq!(handling("temperature").as_deref(), Some("translated"));
    assert_eq!(handling("user").as_deref(), Some("ignored"));
    assert_eq!(handling("logit_bias").as_deref(), Some("rejected"));
    assert!(params.iter().any(|p| p["name"] == "parallel_tool_calls" && p["refused_when"].is_string()));

    let mock = Mock::start();
    let gw = bridge(&mock, "gk-one");
    for (route, path, base) in [
        ("chat.completions", "/v1/chat/completions", chat("gemini-2.5-flash")),
        ("responses", "/v1/responses", json!({"model": "gemini-2.5-flash", "input": "hi"})),
        (
            "messages",
            "/v1/messages",
            json!({"model": "gemini-2.5-flash", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ] {
        let params = gemini["translation"]["parameters"][route].as_array().unwrap();
        assert!(params.len() > 10, "{route}");
        for p in params.iter().filter(|p| p.get("nested").is_none()) {
            let name = p["name"].as_str().unwrap();
            let mut body = base.clone();
            match p["handling"].as_str().unwrap() {
                "rejected" => {
                    body[name] = json!(true);
                    let r = post(&gw, path, &body, &[]);
                    assert_eq!(r.status, 400, "{route} {name}: {}", r.text());
                    // Anthropic's error object has no `param`: the message names it.
                    let named = if route == "messages" {
                        r.json()["error"]["message"].as_str().is_some_and(|m| m.contains(name))
                    } else {
                        r.json()["error"]["param"].as_str() == Some(name)
                    };
                    assert!(named, "{route} {name}: {}", r.text());
                }
                "ignored" => {
                    body[name] = json!("x");
                    let r = post(&gw, path, &body, &[]);
                    assert_eq!(r.status, 200, "{route} {name}: {}", r.text());
                    assert!(r.header("x-prodex-ignored-params").unwrap_or("").split(", ").any(|n| n == name), "{name}");
                }
                _ => {}
            }
        }
    }
}

#[test]
fn responses_are_translated_whole_and_as_an_event_stream() {
    let mock = Mock::start();
    let gw = bridge(&mock, "gk-one");
    let r = post(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "instructions": "Be terse.", "input": "hi", "store": false}),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!((body["object"].as_str(), body["status"].as_str()), (Some("response"), Some("completed")));
    assert_eq!(body["output"][0]["content"][0]["text"], "Hello from gemini");
    assert_eq!(body["usage"]["output_tokens"], 7);
    assert_eq!(r.header("x-prodex-ignored-params"), Some("store"));
    assert_eq!(mock.requests().last().unwrap().json()["systemInstruction"]["parts"][0]["text"], "Be terse.");
    assert_eq!(row_of(&gw, MASTER, &r)["route"], "responses");

    let r = post(&gw, "/v1/responses", &json!({"model": "gemini-2.5-flash", "input": "hi", "stream": true}), &[]);
    assert_eq!(r.status, 200);
    let frames: Vec<(String, Value)> = r
        .text()
        .split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let (e, d) = f.split_once('\n').unwrap();
            (e.trim_start_matches("event: ").to_string(), serde_json::from_str(d.trim_start_matches("data: ")).unwrap())
        })
        .collect();
    assert!(frames.iter().all(|(e, d)| d["type"] == e.as_str()));
    assert_eq!(frames.first().unwrap().0, "response.created");
    let (last, done) = frames.last().unwrap();
    assert_eq!(last, "response.completed");
    assert_eq!(done["response"]["output"][0]["content"][0]["text"], "tok0 tok1 tok2 ");
    assert_eq!(done["response"]["usage"]["output_tokens"], 7);
    let row = row_of(&gw, MASTER, &r);
    assert_eq!(
        (row["stream"].as_bool(), row["usage_source"].as_str(), row["output_tokens"].as_u64()),
        (Some(true), Some("provider"), Some(7))
    );

    let r = post(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "hi", "stream": true}),
        &[("x-mock-gemini", "stream-error")],
    );
    let text = r.text();
    assert!(text.contains("event: response.failed") && !text.contains("response.completed"), "{text}");
}

/// Remote images: refused unless the operator turns fetching on; then https only, never to a
/// private address unless allowed, capped in size; a fetched image reaches Gemini inline.
#[test]
fn remote_images_are_fetched_only_when_allowed_and_never_from_private_addresses() {
    use base64::Engine as _;
    let tls = |f: &str| crate::store::tls_path(f);
    let png = b"\x89PNG\r\n\x1a\nnot-really-a-png".to_vec();
    let site = crate::support::https::Https::start(&tls("server.pem"), &tls("server.key"), "image/png", png.clone());
    let mock = Mock::start();
    let start = |policy: &'static str| {
        Gateway::start(Opts {
            base_url: Some(format!("http://{}/v1beta", mock.addr)),
            args: vec!["--provider", "gemini"],
            env: vec![
                ("PRODEX_GATEWAY_TOKEN", MASTER.into()),
                ("GEMINI_API_KEY", "gk-one".into()),
                ("SSL_CERT_FILE", tls("ca.pem").display().to_string()),
            ],
            policy: Some(policy),
            ..Opts::default()
        })
    };
    let image = |url: String| {
        json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]}]})
    };
    let url = format!("https://localhost:{}/cat.png", site.port);
    let param = "messages[0].content[1].image_url.url";

    let off = start("");
    let r = post(&off, "/v1/chat/completions", &image(url.clone()), &[]);
    assert_eq!((r.status, r.json()["error"]["param"].as_str()), (400, Some(param)), "{}", r.text());
    assert!(r.text().contains("fetch_remote"), "the refusal says how to turn it on: {}", r.text());

    let public_only = start("[gateway.media]\nfetch_remote = true\n");
    let r = post(&public_only, "/v1/chat/completions", &image(url.clone()), &[]);
    assert_eq!((r.status, r.json()["error"]["param"].as_str()), (400, Some(param)), "{}", r.text());
    assert!(r.text().contains("loopback, private or link-local"), "{}", r.text());
    let r = post(&public_only, "/v1/chat/completions", &image(url.replace("https", "http")), &[]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(site.served.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing reached the private address");
    assert_eq!(mock.count(), 0);

    let allowed = start("[gateway.media]\nfetch_remote = true\nallow_private_addresses = true\n");
    let r = post(&allowed, "/v1/chat/completions", &image(url.clone()), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = mock.requests().last().unwrap().json();
    assert_eq!(
        sent["contents"][0]["parts"][1]["inlineData"],
        json!({"mimeType": "image/png", "data": base64::engine::general_purpose::STANDARD.encode(&png)})
    );

    // A token count is free, so it never makes the gateway fetch (only admitted calls do).
    let served = site.served.load(std::sync::atomic::Ordering::SeqCst);
    let count = json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": url}}]}]});
    let r = post(&allowed, "/v1/messages/count_tokens", &count, &[]);
    assert_eq!((r.status, r.json()["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{}", r.text());
    assert!(r.text().contains("messages[0].content[0].source.url"), "{}", r.text());
    assert_eq!(site.served.load(std::sync::atomic::Ordering::SeqCst), served, "no fetch for a count");

    let small = start("[gateway.media]\nfetch_remote = true\nallow_private_addresses = true\nmax_bytes = 8\n");
    let r = post(&small, "/v1/chat/completions", &image(url), &[]);
    assert_eq!((r.status, r.json()["error"]["param"].as_str()), (400, Some(param)), "{}", r.text());
    assert!(r.text().contains("larger than 8 bytes"), "{}", r.text());
}

/// `/v1/messages` (also `?beta=true`) to Gemini: Anthropic's event sequence with `event:` lines,
/// Anthropic-shaped errors from the provider and the gateway, and free token counts.
#[test]
fn anthropic_shaped_clients_reach_gemini_through_v1_messages() {
    let mock = Mock::start();
    let gw = bridge(&mock, "gk-one");
    let body = json!({"model": "gemini-2.5-flash", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, "/v1/messages?beta=true", &body, &[("anthropic-version", "2023-06-01")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let kinds: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(kinds.first(), Some(&"message_start"));
    assert_eq!(&kinds[kinds.len() - 2..], ["message_delta", "message_stop"]);
    assert!(!text.contains("[DONE]"), "no OpenAI terminator on an Anthropic stream");
    assert!(
        mock.requests().last().unwrap().path.ends_with(":streamGenerateContent?alt=sse"),
        "the query is not forwarded"
    );
    let row = row_of(&gw, MASTER, &r);
    assert_eq!(
        (row["route"].as_str(), row["provider"].as_str(), row["output_tokens"].as_u64()),
        (Some("messages"), Some("gemini"), Some(7))
    );

    let r = post(
        &gw,
        "/v1/messages",
        &json!({"model": "gemini-2.5-flash", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        &[("x-mock-429-key", "gk-one")],
    );
    assert_eq!(r.status, 429);
    assert_eq!(
        (r.json()["type"].as_str(), r.json()["error"]["type"].as_str()),
        (Some("error"), Some("rate_limit_error"))
    );
    assert_eq!(r.header("retry-after"), Some("2"));

    let before = row_of(&gw, MASTER, &r);
    let r = post(
        &gw,
        "/v1/messages/count_tokens",
        &json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!((r.status, r.json()["input_tokens"].as_u64()), (200, Some(32)), "{}", r.text());
    let row = row_of(&gw, MASTER, &r);
    assert_eq!(
        (row["route"].as_str(), row["usage_source"].as_str()),
        (Some("messages.count_tokens"), Some("none")),
        "{before}"
    );
    assert_eq!(row["cost_microusd"].as_u64().unwrap_or(0), 0, "a count is free");
}
