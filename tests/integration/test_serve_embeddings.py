"""``turnout serve`` (its own process, a real worker, two simulators) with the official openai
SDK: ``client.embeddings.create`` (its default base64 encoding and float) and
``client.models.list()``, behind serve's bearer auth like every other route."""

from __future__ import annotations

import openai
import pytest

from ops.simulator.embeddings import DEFAULT_DIMENSIONS, vector_for
from tests.integration import test_serve
from tests.integration.test_serve import Served, sdk

#: test_serve's fixtures: serve in its own process over this module's stack.
served = test_serve.served
api = test_serve.api


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) < 1e-6 for x, y in zip(a, b, strict=True))


def test_the_openai_sdk_embeds_through_the_queue(api: Served, stack):
    client = sdk(api)
    texts = ["the first text", "and a second one"]
    reply = client.embeddings.create(model="default", input=texts)  # base64, decoded by the SDK
    assert [item.index for item in reply.data] == [0, 1]
    for item, text in zip(reply.data, texts, strict=True):
        assert close(item.embedding, vector_for(text, "sim-model", DEFAULT_DIMENSIONS))
    assert reply.usage.prompt_tokens > 0
    extra = reply.model_extra or {}
    assert extra["turnout"]["deployment"] == "primary"
    assert [a["outcome"] for a in extra["turnout"]["attempts"]] == ["ok"]
    assert stack.primary.chat_requests() == 1, "one provider call for the two texts"

    shorter = client.embeddings.create(
        model="secondary", input="one text", encoding_format="float", dimensions=64
    )
    assert close(shorter.data[0].embedding, vector_for("one text", "sim-model", 64))
    assert (shorter.model_extra or {})["turnout"]["deployment"] == "secondary"


def test_embeddings_fail_over_like_completions(api: Served, stack):
    stack.primary.set_faults(fail_rate=1.0, fail_status=503)
    reply = sdk(api).embeddings.create(model="default", input="fail me over")
    facts = (reply.model_extra or {})["turnout"]
    assert facts["deployment"] == "secondary"
    assert next(a["deployment"] for a in facts["attempts"] if a["outcome"] != "ok") == "primary"


def test_bad_embeddings_input_is_refused_before_enqueue(api: Served, stack):
    for body, param in [
        ({"model": "default", "input": [[1, 2, 3]]}, "input"),
        ({"model": "default", "input": ["  "]}, "input"),
        ({"model": "default", "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ]:
        response = api.call("POST", "/v1/embeddings", json=body, headers=api.auth())
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"].startswith(param), response.text
    with pytest.raises(openai.NotFoundError):
        sdk(api).embeddings.create(model="no-such-policy", input="x")
    assert stack.primary.chat_requests() == 0
    assert stack.queue_length() == 0


def test_models_list_names_every_policy_deployment_and_alias(api: Served):
    client = sdk(api)
    listed = list(client.models.list())
    assert [m.id for m in listed] == ["default", "primary", "secondary"]
    assert {m.object for m in listed} == {"model"}
    assert {m.id: m.owned_by for m in listed} == {
        "default": "turnout",
        "primary": "openai",
        "secondary": "openai",
    }
    assert client.models.retrieve("primary").id == "primary"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nothing")
    with pytest.raises(openai.AuthenticationError):
        sdk(api, token="not-a-token").models.list()
    assert api.call("GET", "/v1/models").status_code == 401
