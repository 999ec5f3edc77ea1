"""The testing switch: a whole turnout for a ``with`` block, and nothing left of it after."""

from __future__ import annotations

import os
import socket

import redis

from ops.testing import turnout_testing
from routing.keys import Keys
from routing.models import JobState


def test_a_job_is_served_and_a_broken_provider_fails_over(redis_url):
    with turnout_testing(providers=("first", "second")) as stack:
        served = stack.client.complete("Hello", timeout=20)
        assert (served.state, served.deployment) == (JobState.SUCCEEDED, "first")
        stack.faults("first", fail_rate=1.0, fail_status=503)
        moved = stack.client.complete("Hello again", timeout=20)
        assert moved.deployment == "second"
        assert stack.provider("first").chat_requests() >= 2
        stack.reset()
        assert stack.provider("first").chat_requests() == 0


def test_the_environment_points_at_the_stack_only_while_it_runs(redis_url, monkeypatch):
    monkeypatch.setenv("TURNOUT_NAMESPACE", "mine")
    monkeypatch.setenv("TURNOUT_LEASE_S", "99")
    with turnout_testing() as stack:
        assert os.environ["TURNOUT_NAMESPACE"] == stack.namespace != "mine"
        assert os.environ["TURNOUT_CONFIG"] == str(stack.config_path)
        assert "TURNOUT_LEASE_S" not in os.environ
    assert os.environ["TURNOUT_NAMESPACE"] == "mine"
    assert os.environ["TURNOUT_LEASE_S"] == "99"


def test_everything_stops_and_the_namespace_is_deleted_on_exit(redis_url):
    with turnout_testing() as stack:
        stack.client.complete("Leave a record", timeout=20)
        assert stack.job_keys()
        ports = [p.server.port for p in stack.providers.values()]
        namespace, url = stack.namespace, stack.settings.redis_url
        config = stack.config_path
    with redis.Redis.from_url(url) as client:
        assert list(client.scan_iter(match=Keys(namespace).pattern)) == []
    assert not config.exists()
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"a simulator still on {port}"


def test_the_callers_logger_levels_come_back_on_exit(redis_url):
    import logging

    httpx_logger = logging.getLogger("httpx")
    before = httpx_logger.level
    httpx_logger.setLevel(logging.DEBUG)
    try:
        with turnout_testing(redis_url=redis_url):
            pass
        assert httpx_logger.level == logging.DEBUG, "the worker quieted httpx for good"
    finally:
        httpx_logger.setLevel(before)


def test_the_worker_app_is_given_back_as_it_was(redis_url):
    from workers import app as worker_app

    before = worker_app.app.conf.broker_transport_options.get("global_keyprefix")
    with turnout_testing(redis_url=redis_url) as stack:
        inside = worker_app.app.conf.broker_transport_options.get("global_keyprefix")
        assert inside == Keys(stack.namespace).prefix
    assert worker_app.app.conf.broker_transport_options.get("global_keyprefix") == before
