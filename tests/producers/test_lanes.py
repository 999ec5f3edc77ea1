"""A job's lane: the call's, else its policy's, else the client's (interactive unless told);
an unknown one is refused before anything is stored."""

from __future__ import annotations

import pytest

from producers.client import Client
from producers.settings import ProducerSettings
from routing.config import parse_config
from routing.errors import InvalidRequest

CONFIG = parse_config(
    {
        "deployments": [{"id": "primary", "provider": "openai", "model": "gpt-4o-mini"}],
        "policies": {
            "default": {"targets": ["primary"]},
            "overnight": {"targets": ["primary"], "lane": "bulk"},
        },
    }
)


@pytest.fixture
def make():
    made: list[Client] = []

    def client(**options: object) -> Client:
        # Nothing here talks to Redis: prepare only validates against the config.
        settings = ProducerSettings(REDIS_URL="redis://127.0.0.1:1/0")
        made.append(Client(settings=settings, config=CONFIG, **options))  # type: ignore[arg-type]
        return made[-1]

    yield client
    for each in made:
        each.close()


def lane_of(client: Client, **options: object) -> str | None:
    return client.prepare("Hi", **options)[1].lane  # type: ignore[arg-type]


def test_the_call_beats_the_policy_which_beats_the_client(make):
    web, batch = make(), make(lane="bulk")
    assert lane_of(web) == "interactive"
    assert lane_of(batch) == "bulk"
    assert lane_of(web, policy="overnight") == "bulk"
    assert lane_of(web, policy="overnight", lane="interactive") == "interactive"
    assert lane_of(batch, lane="interactive") == "interactive"


def test_an_interactive_job_needs_no_redis_to_find_its_queue(make):
    web = make()
    assert web.queue_of(web.prepare("Hi")[1]) == "jobs"


def test_an_unknown_lane_is_refused(make):
    with pytest.raises(InvalidRequest, match="unknown lane"):
        lane_of(make(), lane="web")
    with pytest.raises(InvalidRequest, match="unknown lane"):
        make(lane="web")
