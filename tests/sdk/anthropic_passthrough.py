"""The official anthropic SDK through the gateway to an Anthropic upstream (`--provider anthropic`,
`/v1/messages` passed through byte for byte), as a coding agent would use it: streaming and not,
a tools round trip with thinking, count_tokens, betas, and errors the SDK classifies itself.

Run by tests/sdk.rs against the mock's Anthropic dialect; prints ALL OK on success.
"""
import os

import anthropic

from checks import check

root = os.environ["PRODEX_BASE_URL_ROOT"]
client = anthropic.Anthropic(base_url=root, api_key=os.environ["PRODEX_KEY"], max_retries=0)

msgs = [{"role": "user", "content": "hi"}]
m = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, system="Be terse.", messages=msgs,
                           metadata={"user_id": "u-1"})
check(m.content[0].text == "Hello from claude" and m.stop_reason == "end_turn", "messages non-stream")
check(m.usage.input_tokens == 5 and m.usage.cache_read_input_tokens == 3 and m.usage.cache_creation_input_tokens == 3,
      f"Anthropic's own usage, untouched: {m.usage}")

with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=msgs) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
check(text == "Hello from claude" and final.stop_reason == "end_turn", f"messages stream ({text!r})")
check(final.usage.output_tokens == 7, "stream usage from message_delta")

tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
         {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}]
for streamed in (False, True):
    kwargs = dict(model="claude-sonnet-4-5", max_tokens=4096, messages=msgs, tools=tools,
                  thinking={"type": "enabled", "budget_tokens": 2048}, extra_headers={"x-mock-anthropic": "tools"})
    if streamed:
        with client.messages.stream(**kwargs) as s:
            reply = s.get_final_message()
    else:
        reply = client.messages.create(**kwargs)
    check(reply.content[0].type == "thinking" and reply.content[0].signature, f"signed thinking (stream={streamed})")
    uses = [b for b in reply.content if b.type == "tool_use"]
    check([u.name for u in uses] == ["get_weather", "get_time"] and uses[0].input == {"city": "Paris"},
          f"tool_use blocks (stream={streamed})")
    history = msgs + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "ok"} for u in uses]},
    ]
    done = client.messages.create(model="claude-sonnet-4-5", max_tokens=4096, messages=history, tools=tools,
                                  thinking={"type": "enabled", "budget_tokens": 2048})
    check(done.content[-1].text == "Hello from claude", f"tools round trip with thinking replayed (stream={streamed})")

count = client.messages.count_tokens(model="claude-sonnet-4-5", system="Be terse.", messages=msgs, tools=tools)
check(count.input_tokens == 42, f"count_tokens passed through ({count.input_tokens})")

beta = client.beta.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=msgs,
                                   betas=["interleaved-thinking-2025-05-14"])
check(beta.content[0].text == "Hello from claude", "betas (?beta=true and anthropic-beta) pass")

try:
    client.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=msgs,
                           extra_headers={"x-mock-status": "529"})
    check(False, "529 raised")
except anthropic.APIStatusError as e:
    check(e.status_code == 529 and e.body["error"]["type"] == "overloaded_error", f"the provider's 529 ({e.status_code})")

bad = anthropic.Anthropic(base_url=root, api_key="wrong-key", max_retries=0)
try:
    bad.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=msgs)
    check(False, "a bad key refused")
except anthropic.AuthenticationError as e:
    check(e.status_code == 401 and e.body["type"] == "error", "the gateway's own 401, Anthropic-shaped")

print("ALL OK")
