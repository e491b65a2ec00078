"""A key whose budget is used up gets RateLimitError, and the SDK does not retry it.

Run by tests/sdk.rs with PRODEX_BASE_URL and PRODEX_KEY; prints ALL OK on success.
"""
import os

import openai

# Default retries on: the gateway's `x-should-retry: false` is what must stop them.
client = openai.OpenAI(base_url=os.environ["PRODEX_BASE_URL"], api_key=os.environ["PRODEX_KEY"], max_retries=3)
try:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    raise SystemExit("FAIL: an exhausted key was admitted")
except openai.RateLimitError as e:
    assert e.status_code == 429, e.status_code
    assert e.code == "request_budget_exceeded", e.code
    assert e.type == "insufficient_quota", e.type
print("ALL OK")
