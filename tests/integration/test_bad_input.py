"""Bad input gets a clear error at the producer, and nothing is enqueued."""

import asyncio

import pytest

from producers.client import Client
from routing.errors import ConfigError, InvalidRequest
from tests.integration.conftest import run_cli


@pytest.mark.parametrize(
    ("request_", "kwargs", "complaint"),
    [
        ({"messages": []}, {}, "messages: List should have at least 1 item"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, {}, "role"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": -5}, {}, "max_tokens"),
        ("hi", {"policy": "nightly"}, "unknown policy 'nightly'"),
        ("hi", {"targets": ["primary", "tertiary"]}, "unknown deployment 'tertiary'"),
        ("hi", {"policy": {"targets": ["primary"], "deadline_s": 3600}}, "longer than this stack"),
    ],
)
def test_the_client_refuses_before_enqueueing(idle_stack, request_, kwargs, complaint):
    with idle_stack.client() as client, pytest.raises(InvalidRequest, match=complaint):
        client.submit(request_, **kwargs)
    assert idle_stack.queue_length() == 0
    assert idle_stack.job_keys() == []


WRONG_TYPES = [
    (None, {}, "request: a prompt .* not NoneType"),
    (["hi"], {}, "request: a prompt .* not list"),
    (b"hi", {}, "request: a prompt .* not bytes"),
    (42, {}, "request: a prompt .* not int"),
    ("hi", {"policy": ["primary"]}, "policy: a policy name .* not list"),
    ("hi", {"policy": 5}, "policy: a policy name .* not int"),
    ("hi", {"targets": 5}, r"targets: a list of deployment ids \(str\) is required, not int"),
    ("hi", {"targets": "primary"}, "targets: a list of deployment ids .* not str"),
    ("hi", {"targets": ["primary", 7]}, r"targets\[1\]: a deployment id \(str\) .* not int"),
]


@pytest.mark.parametrize(("request_", "kwargs", "complaint"), WRONG_TYPES)
def test_an_argument_of_the_wrong_type_is_refused_at_every_entry_point(
    idle_stack, request_, kwargs, complaint
):
    async def refused_on_asyncio(client):
        with pytest.raises(InvalidRequest, match=complaint):
            await client.asubmit(request_, **kwargs)
        with pytest.raises(InvalidRequest, match=complaint):
            await client.acomplete(request_, **kwargs)
        await client.aclose()

    with idle_stack.client() as client:
        with pytest.raises(InvalidRequest, match=complaint):
            client.submit(request_, **kwargs)
        with pytest.raises(InvalidRequest, match=complaint):
            client.complete(request_, **kwargs)
        asyncio.run(refused_on_asyncio(client))
    assert idle_stack.queue_length() == 0
    assert idle_stack.job_keys() == []


def test_a_timeout_of_the_wrong_type_is_refused_before_the_job_is_enqueued(idle_stack):
    with idle_stack.client() as client:
        with pytest.raises(InvalidRequest, match="timeout: a number of seconds or None"):
            client.complete("hi", timeout="60")
        with pytest.raises(InvalidRequest, match="timeout"):
            asyncio.run(client.acomplete("hi", timeout=[1]))
    assert idle_stack.queue_length() == 0
    assert idle_stack.job_keys() == []


def test_an_owner_that_is_not_a_string_is_refused_before_the_job_is_stored(idle_stack):
    with idle_stack.client() as client:
        for owner in (5, b"me", ""):
            with pytest.raises(InvalidRequest, match="owner: a non-empty string or None"):
                client.submit("hi", owner=owner)
    assert idle_stack.queue_length() == 0
    assert idle_stack.job_keys() == []


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--prompt", "   "], "blank"),
        (["--prompt", "hi", "--max-tokens", "-1"], "max_tokens"),
        (["--prompt", "hi", "--policy", "nightly"], "unknown policy 'nightly'"),
        (["--prompt", "hi", "--target", "nope"], "unknown deployment 'nope'"),
    ],
)
def test_the_cli_refuses_with_exit_status_2(idle_stack, args, complaint):
    done = run_cli(["submit", *args], idle_stack.env)
    assert done.returncode == 2, done.stderr
    assert complaint in done.stderr
    assert idle_stack.queue_length() == 0
    assert idle_stack.job_keys() == []


def test_a_malformed_config_is_a_clear_error_everywhere(idle_stack, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("deployments:\n  - id: a\n    provider: opneai\n    model: m\n")
    with pytest.raises(ConfigError, match=r"deployments\[0\]\.provider: unknown provider"):
        Client(settings=idle_stack.settings(), config=broken)
    done = run_cli(["submit", "--prompt", "hi"], {**idle_stack.env, "TURNOUT_CONFIG": str(broken)})
    assert done.returncode == 2
    assert str(broken) in done.stderr
    assert "did you mean 'openai'" in done.stderr
    assert idle_stack.queue_length() == 0
