"""The official Anthropic Python SDK against gantry's /v1/messages:
messages, streaming (Anthropic's event sequence), tool use with its tool
results, count_tokens, and errors in Anthropic's shape.

Environment: GANTRY_URL, MODEL, TOOLS=1 when the engine answers a forced
tool choice with a call, COUNT=1 when its engine can count tokens.
"""

# Every check below is a bare assert: prove they are live first (python -O
# or PYTHONOPTIMIZE strips asserts, and the script would still print ok).
try:
    assert False
    raise SystemExit("asserts are stripped (python -O or PYTHONOPTIMIZE): this script's checks would prove nothing")
except AssertionError:
    pass

import os

import anthropic

url, model = os.environ["GANTRY_URL"], os.environ["MODEL"]
a = anthropic.Anthropic(base_url=url, api_key=os.environ.get("KEY", "none"))

m = a.messages.create(model=model, max_tokens=16, system="Be brief.",
                      messages=[{"role": "user", "content": "Hallo"},
                                {"role": "assistant", "content": "Hi."},
                                {"role": "user", "content": [{"type": "text", "text": "Again"}]}])
assert m.type == "message" and m.content[0].type == "text" and m.content[0].text, m
assert m.stop_reason in ("end_turn", "max_tokens") and m.usage.output_tokens > 0, m

with a.messages.stream(model=model, max_tokens=16, messages=[{"role": "user", "content": "Hallo"}]) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
assert text and final.content[0].text == text and final.usage.output_tokens > 0, (text, final)

events = [ev.type for ev in a.messages.create(model=model, max_tokens=4, stream=True,
                                               messages=[{"role": "user", "content": "x"}])]
assert events[0] == "message_start" and events[-1] == "message_stop" and "content_block_start" in events and "content_block_stop" in events, events

if os.environ.get("TOOLS") == "1":
    tools = [{"name": "get_weather", "description": "Get the weather",
              "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}]
    m = a.messages.create(model=model, max_tokens=64, tools=tools, tool_choice={"type": "any"},
                          messages=[{"role": "user", "content": "Weather in Paris?"}])
    use = [b for b in m.content if b.type == "tool_use"]
    assert m.stop_reason == "tool_use" and use and use[0].name == "get_weather" and "location" in use[0].input, m
    m2 = a.messages.create(model=model, max_tokens=32, tools=tools, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": m.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use[0].id, "content": "15 degrees"}]}])
    assert m2.content and m2.content[0].type == "text", m2
    with a.messages.stream(model=model, max_tokens=64, tools=tools, tool_choice={"type": "tool", "name": "get_weather"},
                           messages=[{"role": "user", "content": "Weather?"}]) as s:
        final = s.get_final_message()
    assert final.content[-1].type == "tool_use" and final.content[-1].input.get("location"), final

if os.environ.get("COUNT") == "1":
    n = a.messages.count_tokens(model=model, messages=[{"role": "user", "content": "one two three"}])
    assert n.input_tokens > 0, n

try:
    a.messages.create(model="no-such-model", max_tokens=4, messages=[{"role": "user", "content": "x"}])
    raise AssertionError("an unknown model was served")
except anthropic.NotFoundError as e:
    assert e.body["type"] == "error" and e.body["error"]["type"] == "not_found_error", e.body
try:
    a.messages.create(model=model, max_tokens=4, messages=[{"role": "system", "content": "x"}])
    raise AssertionError("a bad request was served")
except anthropic.BadRequestError as e:
    assert e.body["error"]["type"] == "invalid_request_error", e.body
print("ok")
