"""The official OpenAI Python SDK, unchanged and with its default retries,
against a gantry key limited to RPM requests per minute: N requests one
after another all succeed, the ones over the limit after the SDK waited
out gantry's Retry-After (openai/_base_client.py: retry-after-ms, else
retry-after, honoured up to 2 minutes; 429 is retried). Prints each retry's
wait and the headers of the last 429, then "ok".

Environment: GANTRY_URL (without /v1), KEY, MODEL, N, RPM.
"""

# Every check below is a bare assert: prove they are live first (python -O
# or PYTHONOPTIMIZE strips asserts, and the script would still print ok).
try:
    assert False
    raise SystemExit("asserts are stripped (python -O or PYTHONOPTIMIZE): this script's checks would prove nothing")
except AssertionError:
    pass

import logging
import os
import re
import time

import httpx
import openai

url, key, model = os.environ["GANTRY_URL"], os.environ["KEY"], os.environ["MODEL"]
n, rpm = int(os.environ["N"]), int(os.environ["RPM"])

waits = []


class Retries(logging.Handler):
    """Counts the SDK's own "Retrying request in %f seconds" lines."""

    def emit(self, record):
        m = re.match(r"Retrying request in ([0-9.]+) seconds", record.getMessage())
        if m:
            waits.append(float(m.group(1)))


log = logging.getLogger("openai._base_client")
log.setLevel(logging.INFO)
log.addHandler(Retries())

limited = []


def seen(response: httpx.Response):
    if response.status_code == 429:
        limited.append(dict(response.headers))


c = openai.OpenAI(base_url=url + "/v1", api_key=key, http_client=httpx.Client(event_hooks={"response": [seen]}))
assert c.max_retries == 2, c.max_retries  # the SDK's default, untouched
began = time.monotonic()
for i in range(n):
    r = c.chat.completions.create(model=model, messages=[{"role": "user", "content": str(i)}], max_tokens=4)
    assert r.choices[0].message.content, r
took = time.monotonic() - began

print(f"{n} requests at {rpm} rpm in {took:.1f}s; {len(waits)} retries, waits {[round(w, 2) for w in waits]}")
assert len(waits) >= n - rpm, waits  # every request over the limit waited at least once
per = 60 / rpm
# Each wait is gantry's Retry-After (retry-after-ms), not the SDK's own
# backoff (0.5 s doubling, at most 8 s, with jitter).
assert all(per - 1 <= w <= per + 0.5 for w in waits), waits
h = limited[-1]
print("429 headers:", {k: v for k, v in h.items() if k.startswith(("retry", "x-ratelimit"))})
assert h["x-ratelimit-limit-requests"] == str(rpm) and h["x-ratelimit-remaining-requests"] == "0", h
assert int(h["retry-after"]) >= 1 and float(h["retry-after-ms"]) > 0, h
print("ok")
