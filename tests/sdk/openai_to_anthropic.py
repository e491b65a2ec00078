"""The official openai SDK through the gateway to an Anthropic upstream (`--provider anthropic`):
chat completions and Responses translated both ways, streaming and not, tools, and a multi-turn
tool conversation with thinking on (the signed thinking rides back on the assistant message).

Run by tests/sdk.rs against the mock's Anthropic dialect; prints ALL OK on success.
"""
import json
import os

import openai

from checks import check

client = openai.OpenAI(base_url=os.environ["PRODEX_BASE_URL"], api_key=os.environ["PRODEX_KEY"], max_retries=0)

msgs = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]
chat = client.chat.completions.create(model="claude-sonnet-4-5", messages=msgs, max_tokens=100)
check(chat.choices[0].message.content == "Hello from claude" and chat.choices[0].finish_reason == "stop", "chat")
check(chat.usage.prompt_tokens == 11 and chat.usage.prompt_tokens_details.cached_tokens == 3, "cache reads in usage")

stream = client.chat.completions.create(model="claude-sonnet-4-5", messages=msgs, stream=True,
                                        stream_options={"include_usage": True})
text, usage = "", None
for chunk in stream:
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    usage = chunk.usage or usage
check(text == "Hello from claude" and usage.completion_tokens == 7, f"chat stream ({text!r})")

tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}]
calls = {}
for chunk in client.chat.completions.create(model="claude-sonnet-4-5", messages=msgs, tools=tools, stream=True,
                                            extra_headers={"x-mock-anthropic": "tools"}):
    for d in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
        entry = calls.setdefault(d.index, {"id": d.id, "name": d.function.name, "arguments": ""})
        entry["arguments"] += d.function.arguments or ""
check(sorted(calls) == [0, 1] and calls[0]["name"] == "get_weather", f"streamed parallel calls ({calls})")
check(json.loads(calls[0]["arguments"]) == {"city": "Paris"}, "streamed arguments")

# A multi-turn tool conversation with thinking on: the SDK's own message object goes back as it came.
first = client.chat.completions.create(model="claude-sonnet-4-5", messages=msgs, tools=tools, reasoning_effort="low",
                                       extra_headers={"x-mock-anthropic": "tools"})
message = first.choices[0].message
check(first.choices[0].finish_reason == "tool_calls" and len(message.tool_calls) == 2, "tool calls with thinking")
check(getattr(message, "reasoning_content", None), "the thinking text is on the message")
history = msgs + [message] + [{"role": "tool", "tool_call_id": c.id, "content": "ok"} for c in message.tool_calls]
second = client.chat.completions.create(model="claude-sonnet-4-5", messages=history, tools=tools, reasoning_effort="low")
check(second.choices[0].message.content == "Hello from claude", "the next turn replays the signed thinking")

resp = client.responses.create(model="claude-haiku-4-5", input="hi", instructions="Be terse.")
check(resp.output_text == "Hello from claude" and resp.usage.input_tokens == 11, "responses non-stream")
events = [e.type for e in client.responses.create(model="claude-haiku-4-5", input="hi", stream=True)]
check(events[0] == "response.created" and events[-1] == "response.completed", f"responses stream ({events[-1]})")

# The same loop on Responses, as Codex runs it (store: false, reasoning replayed from encrypted_content).
rtools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
          {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}]
items = [{"role": "user", "content": "weather?"}]
turn = client.responses.create(model="claude-sonnet-4-5", input=items, tools=rtools, reasoning={"effort": "low"},
                               include=["reasoning.encrypted_content"], store=False, stream=True,
                               extra_headers={"x-mock-anthropic": "tools"})
final = [e for e in turn if e.type == "response.completed"][0].response
kinds = [o.type for o in final.output]
check(kinds == ["reasoning", "message", "function_call", "function_call"], f"reasoning, text and calls ({kinds})")
check(final.output[0].encrypted_content, "the signature rides in encrypted_content")
items += [o.model_dump(exclude_none=True) for o in final.output]
items += [{"type": "function_call_output", "call_id": o.call_id, "output": "ok"} for o in final.output if o.type == "function_call"]
done = client.responses.create(model="claude-sonnet-4-5", input=items, tools=rtools, reasoning={"effort": "low"},
                               include=["reasoning.encrypted_content"], store=False)
check(done.output_text == "Hello from claude", "the Responses tool loop replays the signed thinking")

try:
    client.chat.completions.create(model="claude-sonnet-4-5", messages=msgs, n=2)
    check(False, "n=2 refused")
except openai.BadRequestError as e:
    check(e.body["param"] == "n" and e.body["code"] == "unsupported_parameter", "n refused by name")

print("ALL OK")
