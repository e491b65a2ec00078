"""The official openai SDK through the gateway's Gemini bridge, exactly as an application would.

Run by tests/sdk.rs against a gateway started with --provider gemini in front of the mock's Gemini
dialect; prints ALL OK on success.
"""
import base64
import json
import os
import struct

import openai

from checks import check

client = openai.OpenAI(base_url=os.environ["PRODEX_BASE_URL"], api_key=os.environ["PRODEX_KEY"], max_retries=0)


msgs = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]
chat = client.chat.completions.create(model="gemini-2.5-flash", messages=msgs)
check(chat.choices[0].message.content == "Hello from gemini", "chat non-stream content")
check(chat.choices[0].finish_reason == "stop", "chat finish reason")
check(chat.usage.prompt_tokens == 11 and chat.usage.completion_tokens == 7, "chat usage (thoughts counted as output)")
check(chat.usage.prompt_tokens_details.cached_tokens == 3, "cached tokens")
check(chat.usage.completion_tokens_details.reasoning_tokens == 2, "reasoning tokens")

stream = client.chat.completions.create(
    model="gemini-2.5-flash", messages=msgs, stream=True, stream_options={"include_usage": True}
)
text, usage, finish = "", None, None
for chunk in stream:
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage:
        usage = chunk.usage
check(text == "tok0 tok1 tok2 ", f"chat stream text ({text!r})")
check(finish == "stop", "chat stream finish")
check(usage is not None and usage.completion_tokens == 7, "chat stream usage")

tools = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                    "additionalProperties": False}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
]
for streamed in (False, True):
    kwargs = dict(model="gemini-3-pro-preview", messages=msgs, tools=tools, extra_headers={"x-mock-gemini": "tools"})
    if streamed:
        calls = {}
        finish = None
        for chunk in client.chat.completions.create(stream=True, **kwargs):
            for d in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                entry = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = d.id or entry["id"]
                entry["name"] = (d.function.name if d.function else None) or entry["name"]
                entry["arguments"] += (d.function.arguments or "") if d.function else ""
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        call_list = [calls[i] for i in sorted(calls)]
        check(sorted(calls) == [0, 1], f"two streamed parallel calls with distinct indexes ({sorted(calls)})")
    else:
        resp = client.chat.completions.create(**kwargs)
        finish = resp.choices[0].finish_reason
        call_list = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                     for c in resp.choices[0].message.tool_calls]
        check(len(call_list) == 2, "two parallel calls")
    check(finish == "tool_calls", f"finish is tool_calls (stream={streamed})")
    check(json.loads(call_list[0]["arguments"]) == {"city": "Paris"}, "arguments")
    # The SDK user sends back the assistant turn as the SDK shaped it plus the tool results; the
    # mock refuses the replay (as Gemini 3 does) unless the first call's signature came back.
    history = msgs + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in call_list]},
        {"role": "tool", "tool_call_id": call_list[0]["id"], "content": "22C"},
        {"role": "tool", "tool_call_id": call_list[1]["id"], "content": "10:00"},
    ]
    final = client.chat.completions.create(model="gemini-3-pro-preview", messages=history, tools=tools)
    check(final.choices[0].message.content == "Hello from gemini", f"tools round trip with the signature (stream={streamed})")

resp = client.responses.create(model="gemini-2.5-flash", instructions="Be terse.", input="hi")
check(resp.output_text == "Hello from gemini" and resp.status == "completed", "responses non-stream")
check(resp.usage.input_tokens == 11 and resp.usage.output_tokens == 7, "responses usage")
check(resp.usage.output_tokens_details.reasoning_tokens == 2, "responses reasoning tokens")

# The SDK's stream helper checks the lifecycle itself (it raises on a delta without its item).
with client.responses.stream(model="gemini-2.5-flash", input="hi") as s:
    deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
    final = s.get_final_response()
check("".join(deltas) == "tok0 tok1 tok2 " and final.output_text == "tok0 tok1 tok2 ", "responses stream text")
check(final.usage is not None and final.usage.output_tokens == 7, "responses stream usage")

rtools = [{"type": "function", "name": t["function"]["name"], "parameters": t["function"]["parameters"]} for t in tools]
with client.responses.stream(model="gemini-3-pro-preview", input="Weather and time?", tools=rtools,
                             extra_headers={"x-mock-gemini": "tools"}) as s:
    final = s.get_final_response()
fcalls = [o for o in final.output if o.type == "function_call"]
check([c.name for c in fcalls] == ["get_weather", "get_time"], "responses stream function calls")
followup = client.responses.create(model="gemini-3-pro-preview", tools=rtools, input=[
    {"role": "user", "content": "Weather and time?"},
    *[{"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments} for c in fcalls],
    *[{"type": "function_call_output", "call_id": c.call_id, "output": "ok"} for c in fcalls],
])
check(followup.output_text == "Hello from gemini", "responses tools round trip with the signature")

emb = client.embeddings.create(model="gemini-embedding-001", input=["a", "b"], encoding_format="float", dimensions=2)
check([d.embedding for d in emb.data] == [[0.25, 1.25], [0.5, 1.5]], "embeddings, float")
emb = client.embeddings.create(model="gemini-embedding-001", input=["a", "b"], dimensions=2)
check([d.embedding for d in emb.data] == [[0.25, 1.25], [0.5, 1.5]], "embeddings, the SDK's default base64")
raw = client.embeddings.with_raw_response.create(model="gemini-embedding-001", input="a", dimensions=2)
vec = json.loads(raw.text)["data"][0]["embedding"]
check(isinstance(vec, str) and struct.unpack("<2f", base64.b64decode(vec)) == (0.25, 1.25), "base64 is little-endian f32")

models = client.models.list()
check([m.id for m in models.data] == ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-embedding-001"], "models list")
check(client.models.retrieve("gemini-2.5-pro").id == "gemini-2.5-pro", "models retrieve")

try:
    client.chat.completions.create(model="gemini-2.5-flash", messages=msgs, logit_bias={"1": 1})
    check(False, "logit_bias refused")
except openai.BadRequestError as e:
    check(e.body.get("param") == "logit_bias" and e.body.get("code") == "unsupported_parameter", "logit_bias refused by name")

print("ALL OK")
