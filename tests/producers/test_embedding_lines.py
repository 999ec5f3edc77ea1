"""Embeddings at the producer: what ``Client.embed`` accepts, and batch lines whose url is
/v1/embeddings (or plain lines with ``input``), checked before anything is enqueued."""

import pytest

from producers.batch_lines import BatchItem, LineProblem, output_line, parse_line
from producers.embedding_arguments import as_embedding_request
from routing.config import parse_config
from routing.embeddings import EmbeddingRequest
from routing.errors import InvalidRequest
from routing.models import CompletionResult, JobState, Usage

CONFIG = parse_config(
    {
        "deployments": [{"id": "small", "provider": "openai", "model": "text-embedding-3-small"}],
        "policies": {"default": {"targets": ["small"]}},
    }
)


def test_texts_in_every_shape_become_one_request():
    assert as_embedding_request("one").input == ["one"]
    assert as_embedding_request(["a", "b"], dimensions=8).dimensions == 8
    assert as_embedding_request({"input": "x", "input_type": "search_query"}).input == ["x"]
    request = EmbeddingRequest(input=["x"])
    assert as_embedding_request(request) is request


@pytest.mark.parametrize("bad", [None, 3, b"bytes", [], [""], {"input": ["x"], "model": "m"}])
def test_bad_texts_are_invalid_requests(bad):
    with pytest.raises(InvalidRequest):
        as_embedding_request(bad)


def test_an_openai_batch_embeddings_line_and_a_plain_one_are_embeddings_jobs():
    openai_line = (
        '{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", '
        '"body": {"model": "default", "input": ["x", "y"], "dimensions": 64}}'
    )
    item = parse_line(openai_line, 1, CONFIG, policy=None)
    assert isinstance(item, BatchItem)
    assert item.request == EmbeddingRequest(input=["x", "y"], dimensions=64)
    assert item.route.policy == "default"
    plain = parse_line('{"custom_id": "b", "input": "z"}', 2, CONFIG, policy=None)
    assert isinstance(plain, BatchItem)
    assert plain.request == EmbeddingRequest(input=["z"])


def test_a_token_array_line_says_what_is_wrong():
    line = '{"custom_id": "a", "url": "/v1/embeddings", "method": "POST", "body": {"input": [[1]]}}'
    problem = parse_line(line, 3, CONFIG, policy=None)
    assert isinstance(problem, LineProblem)
    assert "token arrays are not supported" in problem.message


def test_a_succeeded_embeddings_job_writes_openais_list():
    result = CompletionResult(
        job_id="j1",
        state=JobState.SUCCEEDED,
        embeddings=[[0.5, -0.25]],
        deployment="small",
        model="text-embedding-3-small",
        usage=Usage(prompt_tokens=3, completion_tokens=0, total_tokens=3),
    )
    body = output_line("a", result)["response"]["body"]
    assert body["object"] == "list"
    assert body["data"] == [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
