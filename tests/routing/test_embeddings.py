"""Embeddings jobs' pure rules: what a request accepts, how a job record tells the two kinds
apart, the vector dimension of a deployment, and a policy mixing two of them refused."""

import pytest
from pydantic import ValidationError

from routing.config import parse_config
from routing.embeddings import (
    EmbeddingRequest,
    embedding_targets_problem,
    job_messages,
    parse_job_request,
    planning_policy,
    requested_dimensions,
    table_dimensions,
)
from routing.errors import ConfigError
from routing.models import CompletionRequest, RoutingPolicy
from routing.planning import plan_candidates
from routing.tokens import estimate_prompt_tokens


def deployment(id_: str, model: str, provider: str = "openai", **fields):
    return {"id": id_, "provider": provider, "model": model, **fields}


def test_a_job_record_says_which_kind_of_request_it_holds():
    embedding = EmbeddingRequest(input=["a", "b"], dimensions=64)
    completion = CompletionRequest.from_prompt("hi")
    assert parse_job_request(embedding.model_dump_json()) == embedding
    assert parse_job_request(completion.model_dump_json()) == completion
    with pytest.raises(ValidationError):
        parse_job_request(b"not json")


@pytest.mark.parametrize(
    "fields",
    [{"input": []}, {"input": [" "]}, {"input": ["x"], "dimensions": 0}, {"input": ["x"], "n": 1}],
)
def test_bad_embedding_requests_are_refused(fields):
    with pytest.raises(ValidationError):
        EmbeddingRequest.model_validate(fields)


def test_the_table_knows_embedding_models_dimensions():
    assert table_dimensions("openai", "text-embedding-3-small") == 1536
    assert table_dimensions("azure", "text-embedding-3-large") == 3072  # OpenAI's models
    assert table_dimensions("bedrock", "us.amazon.titan-embed-text-v2:0") == 1024
    assert table_dimensions("gemini", "models/gemini-embedding-001") == 3072
    assert table_dimensions("openai", "gpt-4o") is None


def test_a_policy_mixing_two_dimensions_is_a_config_error_naming_both():
    with pytest.raises(ConfigError) as raised:
        parse_config(
            {
                "deployments": [
                    deployment("small", "text-embedding-3-small"),
                    deployment("large", "text-embedding-3-large"),
                    deployment("local", "nomic-embed-text", "ollama", dimensions=768),
                ],
                "aliases": {"both": ["small", "local"]},
                "policies": {"embed": {"targets": ["small", "large"]}},
            }
        )
    text = str(raised.value)
    assert "policies.embed.targets" in text
    assert "small makes 1536-dimensional vectors and large 3072-dimensional" in text
    assert "aliases.both" in text


def test_one_dimension_declared_shorter_makes_a_policy_of_two_models_valid():
    config = parse_config(
        {
            "deployments": [
                deployment("small", "text-embedding-3-small", dimensions=1024),
                deployment("titan", "amazon.titan-embed-text-v2:0", "bedrock"),
            ],
            "policies": {"embed": {"targets": ["small", "titan"]}},
        }
    )
    small = config.deployments["small"]
    assert small.vector_dimensions == 1024
    assert requested_dimensions(EmbeddingRequest(input=["x"]), small) == 1024
    assert requested_dimensions(EmbeddingRequest(input=["x"], dimensions=8), small) == 8
    titan = config.deployments["titan"]
    assert requested_dimensions(EmbeddingRequest(input=["x"]), titan) is None  # native: ask none


def test_targets_that_cannot_embed_are_named_at_submit():
    config = parse_config(
        {
            "deployments": [
                deployment("small", "text-embedding-3-small"),
                deployment("claude", "claude-sonnet-4-5", "anthropic"),
            ],
            "policies": {"chat": {"targets": ["small", "claude"]}},
        }
    )
    problem = embedding_targets_problem(config, RoutingPolicy(targets=["small", "claude"]))
    assert problem == "these targets make no embeddings in turnout: claude (anthropic)"
    assert embedding_targets_problem(config, RoutingPolicy(targets=["small"])) is None


def test_an_embeddings_job_is_planned_by_its_total_cost_not_its_sum_against_the_window():
    config = parse_config(
        {
            "deployments": [deployment("small", "text-embedding-3-small")],
            "policies": {"embed": {"targets": ["small"]}},
        }
    )
    policy = config.policies["embed"]
    many = EmbeddingRequest(input=["word " * 100] * 200)  # ~20k tokens, 8191 per input
    tokens = estimate_prompt_tokens(job_messages(many), model="text-embedding-3-small")
    assert tokens > 8191
    as_chat = plan_candidates(policy, config, prompt_tokens=tokens)
    assert [skip.reason for skip in as_chat.skipped] == ["context_too_small"]
    planned = plan_candidates(planning_policy(many, policy), config, prompt_tokens=tokens)
    assert [route.deployment.id for route in planned.routes] == ["small"]
    completion = CompletionRequest.from_prompt("hi")
    assert planning_policy(completion, policy) is policy
