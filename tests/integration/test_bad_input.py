"""Bad input gets a clear error at the producer, and nothing is enqueued."""

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
