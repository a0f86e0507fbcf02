"""The official OpenAI Python SDK against gantry: models, chat (sync and
async, streamed with usage), embeddings (float and base64), the Responses
API (streamed and not), and errors mapped to the SDK's exception types.

Environment: GANTRY_URL (the gateway, without /v1), MODEL (a chat model or
alias), EMBED (an embedding model, optional), EMBED_B64=0 when the engine
ignores encoding_format "base64" (Ollama answers floats: ollama/ollama#6934),
TOOLS=1 when the engine answers tool_choice "required" with a call, MEDIA=1
when it serves audio and images.
"""

# Every check below is a bare assert: prove they are live first (python -O
# or PYTHONOPTIMIZE strips asserts, and the script would still print ok).
try:
    assert False
    raise SystemExit("asserts are stripped (python -O or PYTHONOPTIMIZE): this script's checks would prove nothing")
except AssertionError:
    pass

import asyncio
import base64
import os
import struct

import openai

url, model = os.environ["GANTRY_URL"], os.environ["MODEL"]
c = openai.OpenAI(base_url=url + "/v1", api_key=os.environ.get("KEY", "none"))

ids = [m.id for m in c.models.list().data]
assert model in ids, ids
m = c.models.retrieve(model)
assert m.id == model and m.model_extra["gantry"]["state"] in ("stopped", "ready", "starting"), m

r = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hallo"}], max_tokens=8)
assert r.choices[0].message.content and r.usage.completion_tokens > 0, r

text, usage = "", None
for ch in c.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hallo"}], max_tokens=8,
                                     stream=True, stream_options={"include_usage": True}):
    if ch.choices and ch.choices[0].delta.content:
        text += ch.choices[0].delta.content
    if ch.usage:
        usage = ch.usage
assert text and usage and usage.completion_tokens > 0, (text, usage)


async def async_chat():
    ac = openai.AsyncOpenAI(base_url=url + "/v1", api_key=os.environ.get("KEY", "none"))
    rs = await asyncio.gather(*[ac.chat.completions.create(model=model, max_tokens=4,
                                                           messages=[{"role": "user", "content": str(i)}]) for i in range(3)])
    assert all(r.choices[0].message.content for r in rs), rs
    n = 0
    async for ch in await ac.chat.completions.create(model=model, max_tokens=4, stream=True,
                                                     messages=[{"role": "user", "content": "x"}]):
        n += 1
    assert n > 0
asyncio.run(async_chat())

emb = os.environ.get("EMBED")
if emb:
    e = c.embeddings.create(model=emb, input=["a", "b"])
    assert len(e.data) == 2 and len(e.data[0].embedding) > 0 and isinstance(e.data[0].embedding[0], float), e
if emb and os.environ.get("EMBED_B64", "1") == "1":
    raw = c.embeddings.create(model=emb, input="a", encoding_format="base64")
    packed = base64.b64decode(raw.data[0].embedding)  # asked for explicitly, the SDK hands base64 over as it came
    floats = struct.unpack("<%df" % (len(packed) // 4), packed)
    assert len(floats) == len(e.data[0].embedding) and abs(floats[0] - e.data[0].embedding[0]) < 1e-5, (floats, e.data[0].embedding)

# The Responses API, stateless.
resp = c.responses.create(model=model, input="Hallo", max_output_tokens=8)
assert resp.output_text and resp.usage.output_tokens > 0, resp
kinds = [ev.type for ev in c.responses.create(model=model, input=[{"role": "user", "content": "Hallo"}],
                                                instructions="Be brief.", max_output_tokens=8, stream=True)]
assert kinds[0] == "response.created" and "response.output_text.delta" in kinds and kinds[-1] in ("response.completed", "response.incomplete"), kinds
try:
    c.responses.create(model=model, input="x", previous_response_id="resp_1")
    raise AssertionError("previous_response_id was accepted")
except openai.BadRequestError as e:
    assert "stateless" in str(e), e

if os.environ.get("TOOLS") == "1":
    tools = [{"type": "function", "name": "get_weather", "description": "Weather",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    resp = c.responses.create(model=model, input="Weather in Paris?", tools=tools, tool_choice="required")
    calls = [o for o in resp.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather", resp.output
    follow = c.responses.create(model=model, tools=tools, input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather", "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "15 degrees"}])
    assert follow.output_text, follow

if os.environ.get("MEDIA") == "1":
    audio = bytes(300000)  # a large upload: gantry spools it to disk, not memory
    tr = c.audio.transcriptions.create(model=model, file=("speech.wav", audio, "audio/wav"))
    assert tr.text == "the sim heard 300000 bytes of speech.wav", tr
    tl = c.audio.translations.create(model=model, file=("rede.wav", b"RIFF", "audio/wav"))
    assert "4 bytes" in tl.text, tl
    speech = c.audio.speech.create(model=model, input="Hallo", voice="alloy")
    assert speech.content[:4] == b"RIFF", speech.content[:16]
    img = c.images.generate(model=model, prompt="a pixel")
    assert base64.b64decode(img.data[0].b64_json)[:4] == b"\x89PNG", img
    ed = c.images.edit(model=model, image=("in.png", base64.b64decode(img.data[0].b64_json), "image/png"), prompt="again")
    assert ed.data[0].b64_json, ed

# Errors reach the SDK as its own exception types.
try:
    c.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("an unknown model was served")
except openai.NotFoundError as e:
    assert e.body["code"] == "model_not_found", e.body
try:
    c.models.retrieve("no-such-model")
    raise AssertionError("an unknown model was listed")
except openai.NotFoundError:
    pass
try:
    c.post("/nope", cast_to=object, body={})
    raise AssertionError("an unknown route answered")
except openai.NotFoundError as e:
    assert e.body["code"] == "route_not_found", e.body
try:
    c.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], extra_body={"Model": "other"})
    raise AssertionError("an ambiguous body was served")
except openai.BadRequestError as e:
    assert e.body["code"] == "ambiguous_model", e.body
print("ok")
