"""The official openai SDK calling an alias whose first models are down or rate-limited: the
gateway falls over to the next before the first byte, and the SDK sees one clean call
(max_retries=0: the SDK itself retries nothing).

Run by tests/routing.rs; prints ALL OK on success.
"""
import os

import openai

from checks import check

client = openai.OpenAI(base_url=os.environ["PRODEX_BASE_URL"], api_key=os.environ["PRODEX_KEY"], max_retries=0)
msgs = [{"role": "user", "content": "hi"}]
hdr = {"x-mock-429-key": "ak-claude"}

raw = client.chat.completions.with_raw_response.create(model="fast", messages=msgs, extra_headers=hdr)
chat = raw.parse()
check(chat.choices[0].message.content == "Hello from mock", "the fallback's answer, as one call")
check(raw.http_response.status_code == 200 and raw.headers.get("x-prodex-call-id"), "one response with one call id")

text = ""
for chunk in client.chat.completions.create(model="fast", messages=msgs, stream=True, extra_headers=hdr):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
check(text == "tok0 tok1 tok2 ", f"a stream falls over before its first byte ({text!r})")

models = [m.id for m in client.models.list()]
check("fast" in models, f"the alias is listed ({models})")
print("ALL OK")
