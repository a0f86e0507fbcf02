"""Ollama's own Python client against gantry's Ollama API: tags, show, ps,
chat (streamed and not), generate, embed, and the refusal to pull.

Environment: GANTRY_OLLAMA_URL, MODEL, EMBED (optional).
"""

# Every check below is a bare assert: prove they are live first (python -O
# or PYTHONOPTIMIZE strips asserts, and the script would still print ok).
try:
    assert False
    raise SystemExit("asserts are stripped (python -O or PYTHONOPTIMIZE): this script's checks would prove nothing")
except AssertionError:
    pass

import os

import ollama

c = ollama.Client(host=os.environ["GANTRY_OLLAMA_URL"])
model = os.environ["MODEL"]

names = [m.model for m in c.list().models]
assert model in names, names
show = c.show(model)
assert "completion" in show.capabilities, show

r = c.chat(model=model, messages=[{"role": "user", "content": "Hallo"}], options={"num_predict": 8, "temperature": 0})
assert r.message.role == "assistant" and r.message.content and r.done and r.eval_count > 0, r
parts = list(c.chat(model=model, messages=[{"role": "user", "content": "Hallo"}], stream=True, options={"num_predict": 8}))
assert len(parts) > 1 and parts[-1].done and "".join(p.message.content for p in parts), parts
assert model in [m.model for m in c.ps().models], c.ps()

g = c.generate(model=model, prompt="Why is the sky blue?", options={"num_predict": 8})
assert g.response and g.done, g
gs = list(c.generate(model=model, prompt="Hallo", stream=True, options={"num_predict": 4}))
assert gs[-1].done and "".join(p.response for p in gs), gs

emb = os.environ.get("EMBED")
if emb:
    e = c.embed(model=emb, input=["a", "b"])
    assert len(e.embeddings) == 2 and len(e.embeddings[0]) > 0, e

try:
    c.pull(model)
    raise AssertionError("pull was accepted")
except ollama.ResponseError as e:
    assert "managed by gantry" in str(e), e
try:
    c.chat(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("an unknown model was served")
except ollama.ResponseError as e:
    assert e.status_code == 404, e
print("ok")
