"""LangChain's ChatOpenAI and OpenAIEmbeddings against gantry's gateway:
invoke, stream, batch and embeddings, as a RAG pipeline calls them.

env: GANTRY_URL, MODEL (a chat model), EMBED (an embedding model), KEY."""

# Every check below is a bare assert: prove they are live first (python -O
# or PYTHONOPTIMIZE strips asserts, and the script would still print ok).
try:
    assert False
    raise SystemExit("asserts are stripped (python -O or PYTHONOPTIMIZE): this script's checks would prove nothing")
except AssertionError:
    pass

import os

from langchain_openai import ChatOpenAI, OpenAIEmbeddings

url = os.environ["GANTRY_URL"] + "/v1"
key = os.environ.get("KEY", "none")
model, embed = os.environ["MODEL"], os.environ["EMBED"]

# LangChain sends max_tokens as max_completion_tokens (langchain-openai
# 1.7.4, chat_models/base.py), which Ollama's OpenAI layer ignores
# (ollama/ollama#7125: the answer runs to the end of the context); gantry
# renames it for such an engine, so the limit holds on every engine.
LIMIT = 8
# Greedy, and a prompt the suite's tiny random model answers with text (it may
# end at once on another): the same answer each run, on a real engine too.
chat = ChatOpenAI(base_url=url, api_key=key, model=model, temperature=0, max_retries=0, max_tokens=LIMIT)
msg = chat.invoke("Hallo")
assert msg.content, msg
assert msg.usage_metadata and 0 < msg.usage_metadata["output_tokens"] <= LIMIT, msg.usage_metadata

parts = [c.content for c in chat.stream("Hallo")]
assert len(parts) > 1 and "".join(parts), parts
assert len([p for p in parts if p]) <= LIMIT, parts  # a token a chunk at most

outs = chat.batch(["Hallo", "Hallo", "Hallo"])
assert len(outs) == 3 and all(o.content for o in outs), outs
assert all(0 < o.usage_metadata["output_tokens"] <= LIMIT for o in outs), [o.usage_metadata for o in outs]

emb = OpenAIEmbeddings(base_url=url, api_key=key, model=embed, check_embedding_ctx_length=False, max_retries=0)
vecs = emb.embed_documents(["gantry", "serves", "models"])
assert len(vecs) == 3 and all(len(v) > 0 for v in vecs), [len(v) for v in vecs]
q = emb.embed_query("gantry")
assert len(q) == len(vecs[0])
print("ok")
