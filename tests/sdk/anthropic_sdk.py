"""The official anthropic SDK through the gateway's Gemini bridge (`/v1/messages` translated), as a
coding agent would use it: streaming and not, tools, thinking, count_tokens, betas.

Run by tests/sdk.rs; prints ALL OK on success.
"""
import os

import anthropic

from checks import check

client = anthropic.Anthropic(base_url=os.environ["PRODEX_BASE_URL_ROOT"], api_key=os.environ["PRODEX_KEY"], max_retries=0)


msgs = [{"role": "user", "content": "hi"}]
m = client.messages.create(model="gemini-2.5-flash", max_tokens=64, system="Be terse.", messages=msgs,
                           metadata={"user_id": "u-1"})
check(m.content[0].text == "Hello from gemini" and m.stop_reason == "end_turn", "messages non-stream")
check(m.usage.input_tokens == 8 and m.usage.cache_read_input_tokens == 3 and m.usage.output_tokens == 7,
      f"usage the Anthropic way (input without cache reads): {m.usage}")

with client.messages.stream(model="gemini-2.5-flash", max_tokens=64, messages=msgs) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
check(text == "tok0 tok1 tok2 " and final.stop_reason == "end_turn", f"messages stream ({text!r})")
check(final.usage.output_tokens == 7, "stream usage from message_delta")

tools = [{"name": "get_weather", "description": "Current weather",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
         {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}]
for streamed in (False, True):
    kwargs = dict(model="gemini-3-pro-preview", max_tokens=256, messages=msgs, tools=tools,
                  thinking={"type": "enabled", "budget_tokens": 2048}, extra_headers={"x-mock-gemini": "tools"})
    if streamed:
        with client.messages.stream(**kwargs) as s:
            reply = s.get_final_message()
    else:
        reply = client.messages.create(**kwargs)
    uses = [b for b in reply.content if b.type == "tool_use"]
    check(reply.stop_reason == "tool_use" and [u.name for u in uses] == ["get_weather", "get_time"],
          f"tool_use blocks (stream={streamed})")
    check(uses[0].input == {"city": "Paris"}, f"tool input assembled from input_json_delta (stream={streamed})")
    history = msgs + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "ok"} for u in uses]},
    ]
    done = client.messages.create(model="gemini-3-pro-preview", max_tokens=64, messages=history, tools=tools)
    check(done.content[0].text == "Hello from gemini", f"tools round trip with the signature (stream={streamed})")

count = client.messages.count_tokens(model="gemini-2.5-flash", system="Be terse.", messages=msgs, tools=tools)
check(count.input_tokens == 42, f"count_tokens by Gemini's counter ({count.input_tokens})")

raw = client.beta.messages.with_raw_response.create(model="gemini-2.5-flash", max_tokens=16, messages=msgs,
                                                    betas=["interleaved-thinking-2025-05-14"])
check("anthropic-beta" in raw.headers.get("x-prodex-ignored-params", ""), "betas accepted and named as ignored")

try:
    client.messages.create(model="gemini-2.5-flash", max_tokens=16, messages=msgs, container="c1")
    check(False, "container refused")
except anthropic.BadRequestError as e:
    check(e.body["type"] == "error" and e.body["error"]["type"] == "invalid_request_error", "Anthropic-shaped 400")

bad = anthropic.Anthropic(base_url=os.environ["PRODEX_BASE_URL_ROOT"], api_key="wrong-key", max_retries=0)
try:
    bad.messages.create(model="gemini-2.5-flash", max_tokens=16, messages=msgs)
    check(False, "a bad key refused")
except anthropic.AuthenticationError as e:
    check(e.status_code == 401, "a bad key is the SDK's AuthenticationError")

print("ALL OK")
