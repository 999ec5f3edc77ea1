"""``Client.embed`` and ``aembed`` with a real worker and simulators over HTTP: the vectors of
each text in order, the attempt log and cost of a job, a refusal before enqueue."""

from __future__ import annotations

import asyncio

import pytest

from ops.simulator.embeddings import DEFAULT_DIMENSIONS, vector_for
from routing.errors import InvalidRequest
from routing.models import CompletionResult


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) < 1e-6 for x, y in zip(a, b, strict=True))


def test_embed_and_aembed_return_one_vector_per_text_in_order(live):
    texts = [f"text number {n}" for n in range(5)]
    with live.client() as client:
        result = client.embed(texts, timeout=30)
        assert result.embeddings is not None
        for vector, text in zip(result.embeddings, texts, strict=True):
            assert close(vector, vector_for(text, "sim-model", DEFAULT_DIMENSIONS))
        assert result.deployment == "primary"
        assert result.usage is not None
        assert result.usage.completion_tokens == 0
        assert result.cost_usd is not None
        assert result.cost_usd > 0
        assert [a.outcome for a in result.provider_calls] == ["ok"]

        answer: CompletionResult = asyncio.run(
            client.aembed("one", targets=["secondary"], dimensions=32, timeout=30)
        )
        assert answer.deployment == "secondary"
        assert answer.embeddings is not None
        (vector,) = answer.embeddings
        assert close(vector, vector_for("one", "sim-model", 32))


def test_an_embeddings_job_retries_then_fails_over(live):
    live.primary.set_faults(fail_rate=1.0, fail_status=500)
    with live.client() as client:
        result = client.embed("fail over", timeout=30)
    assert result.deployment == "secondary"
    assert [a.deployment for a in result.provider_calls] == ["primary", "primary", "secondary"]


def test_bad_embeddings_input_never_reaches_the_queue(live):
    with live.client() as client:
        with pytest.raises(InvalidRequest):
            client.submit_embedding([])
        with pytest.raises(InvalidRequest):
            client.submit_embedding("x", targets=["nowhere"])
    assert live.queue_length() == 0
    assert live.primary.chat_requests() == 0
