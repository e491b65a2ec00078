"""The official anthropic SDK through the gateway to an OpenAI-compatible upstream (`/v1/messages`
translated to chat completions): streaming and not, a tools round trip, thinking from the
upstream's reasoning, count_tokens (the gateway's estimate).

Run by tests/sdk.rs against the mock's OpenAI dialect; prints ALL OK on success.
"""
import os

import anthropic

from checks import check

client = anthropic.Anthropic(base_url=os.environ["PRODEX_BASE_URL_ROOT"], api_key=os.environ["PRODEX_KEY"], max_retries=0)

msgs = [{"role": "user", "content": "hi"}]
m = client.messages.create(model="gpt-4o-mini", max_tokens=64, system="Be terse.", messages=msgs)
check(m.content[0].text == "Hello from mock" and m.stop_reason == "end_turn", "messages non-stream")
check(m.usage.input_tokens == 8 and m.usage.cache_read_input_tokens == 3 and m.usage.output_tokens == 7,
      f"usage the Anthropic way: {m.usage}")

with client.messages.stream(model="gpt-4o-mini", max_tokens=64, messages=msgs) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
check(text == "tok0 tok1 tok2 " and final.stop_reason == "end_turn", f"messages stream ({text!r})")
check(final.usage.output_tokens == 7 and final.usage.input_tokens == 8, f"stream usage from message_delta: {final.usage}")

tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
         {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}]
for streamed in (False, True):
    kwargs = dict(model="gpt-4o-mini", max_tokens=256, messages=msgs, tools=tools, extra_headers={"x-mock-openai": "tools"})
    if streamed:
        with client.messages.stream(**kwargs) as s:
            reply = s.get_final_message()
    else:
        reply = client.messages.create(**kwargs)
    uses = [b for b in reply.content if b.type == "tool_use"]
    check(reply.stop_reason == "tool_use" and [u.name for u in uses] == ["get_weather", "get_time"],
          f"tool_use blocks (stream={streamed})")
    check(uses[0].input == {"city": "Paris"}, f"the input assembled (stream={streamed})")
    history = msgs + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "ok"} for u in uses]},
    ]
    done = client.messages.create(model="gpt-4o-mini", max_tokens=64, messages=history, tools=tools)
    check(done.content[0].text == "Hello from mock", f"tools round trip (stream={streamed})")

with client.messages.stream(model="gpt-4o-mini", max_tokens=4096, messages=msgs,
                            thinking={"type": "enabled", "budget_tokens": 2048},
                            extra_headers={"x-mock-openai": "reasoning"}) as s:
    final = s.get_final_message()
check(final.content[0].type == "thinking" and final.content[0].thinking == "Let me think.", "reasoning as thinking")
check(final.content[1].text == "Hello from mock", "then the answer")

count = client.messages.count_tokens(model="gpt-4o-mini", system="Be terse.", messages=msgs, tools=tools)
check(count.input_tokens > 0, f"count_tokens estimated ({count.input_tokens})")

try:
    client.messages.create(model="gpt-4o-mini", max_tokens=16, messages=msgs, extra_headers={"x-mock-status": "400"})
    check(False, "an upstream 400 raised")
except anthropic.BadRequestError as e:
    check(e.body["error"]["type"] == "invalid_request_error", "the upstream's 400, Anthropic-shaped")

print("ALL OK")
