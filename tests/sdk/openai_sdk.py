"""Drives the gateway with the official openai SDK, exactly as an application would.

Run by tests/sdk.rs with PRODEX_BASE_URL and PRODEX_KEY set; prints ALL OK on success.
"""
import os

import openai

from checks import check

client = openai.OpenAI(base_url=os.environ["PRODEX_BASE_URL"], api_key=os.environ["PRODEX_KEY"], max_retries=0)


chat = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
check(chat.choices[0].message.content == "Hello from mock", "chat non-stream content")
check(chat.usage.prompt_tokens == 11 and chat.usage.completion_tokens == 7, "chat non-stream usage")

raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[])
check(raw.headers.get("x-prodex-call-id", "").startswith("prodex-"), "call id header visible to the SDK")

stream = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
)
text, usage = "", None
for chunk in stream:
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
check(text == "tok0 tok1 tok2 ", f"chat stream text ({text!r})")
check(usage is not None and usage.completion_tokens == 7, "chat stream usage with include_usage")

stream = client.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True)
chunks = list(stream)
check(all(getattr(c, "usage", None) is None for c in chunks), "no usage chunk when not asked")

emb = client.embeddings.create(model="text-embedding-3-small", input="hello")
check(len(emb.data[0].embedding) == 3 and emb.usage.prompt_tokens == 11, "embeddings")

models = client.models.list()
check([m.id for m in models.data] == ["gpt-4o-mini", "text-embedding-3-small"], "models list")

bad = openai.OpenAI(base_url=os.environ["PRODEX_BASE_URL"], api_key="wrong-key", max_retries=0)
try:
    bad.chat.completions.create(model="gpt-4o-mini", messages=[])
    check(False, "a wrong key is rejected")
except openai.AuthenticationError as e:
    check(e.status_code == 401 and e.code == "invalid_api_key", "wrong key → AuthenticationError(invalid_api_key)")

try:
    client.chat.completions.create(model="gpt-4o-mini", messages=[], extra_headers={"x-mock-status": "400"})
    check(False, "upstream 400 surfaces")
except openai.BadRequestError as e:
    check(e.status_code == 400, "upstream 400 → BadRequestError")

print("ALL OK")
