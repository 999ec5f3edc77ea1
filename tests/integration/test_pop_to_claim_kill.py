"""A worker SIGKILLed between taking a job's message and claiming the job: with the default
settings the job runs again within seconds, once (routing.broker). Before, it came back only
through the reconciler, TURNOUT_REQUEUE_AFTER (600 s) later.

The first worker is held in the window by the TURNOUT_TEST_HOLD hook (routing.kill_window):
``popped`` (message moved out of the queue, kombu's unacked bookkeeping not written: plain BRPOP
lost it there) or ``claim`` (delivered, in kombu's unacked hash, the claim script not run).
No beat runs, so no reconciler: the living worker's consumer beat does the rescue. The last
test is the claim window on RabbitMQ, where the broker itself does the rescue.
"""

from __future__ import annotations

import time

import pytest
import redis

from ops.amqp_queues import delete_stack_queues, queue_depths, stack_queues
from producers.client import Client
from routing.broker import CONSUMER_DEAD_AFTER_S
from routing.keys import Keys
from routing.kill_window import ENV, HOLD_LOG
from routing.models import JobState
from routing.settings import CoreSettings
from tests.integration.harness import (
    FAST_DELIVERY_ENV,
    Sim,
    Worker,
    broker_env,
    settings_for,
    stack_env,
    write_config,
)


def default_delivery_env(env: dict[str, str]) -> dict[str, str]:
    """The stack's environment with the harness's short delivery timings taken out: the
    visibility timeout, lease, reconciler and requeue delay are the defaults."""
    return {key: value for key, value in env.items() if key not in FAST_DELIVERY_ENV}


@pytest.mark.parametrize("window", ["popped", "claim"])
def test_a_worker_killed_between_pop_and_claim_loses_seconds_not_minutes(
    window, redis_url, namespace, tmp_path
):
    primary = Sim("primary", key="sim-primary-key-123456789")
    config = write_config(tmp_path / "turnout.yaml", [primary])
    env = default_delivery_env(stack_env(redis_url, namespace, config, [primary]))
    settings = settings_for(env)
    defaults = CoreSettings.model_validate({})
    assert (settings.requeue_after_s, settings.visibility_timeout_s, settings.lease_s) == (
        defaults.requeue_after_s,
        defaults.visibility_timeout_s,
        defaults.lease_s,
    )
    keys = Keys(namespace)
    first = Worker({**env, ENV: window}, tmp_path / "first.log").start()
    rescuer = Worker(env, tmp_path / "rescuer.log")
    client = Client(settings=settings)
    watcher = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        handle = client.submit("die holding me")
        assert first.process is not None
        first.process.wait_for_log(HOLD_LOG, timeout_s=30, what=f"held in the {window} window")
        held_at = time.monotonic()
        assert watcher.llen(keys.queue_list(keys.queue)) == 0, "the message left the queue"
        rescuer.start()
        assert handle.state() is JobState.QUEUED, "not claimed yet"
        first.kill()
        killed_at = time.monotonic()

        result = handle.wait(timeout=120)
        finished_at = time.monotonic()
        print(
            f"\n{window} window: killed {killed_at - held_at:.1f}s into the hold; finished "
            f"{finished_at - killed_at:.1f}s after the kill, {finished_at - held_at:.1f}s after "
            f"the pop (dead after {CONSUMER_DEAD_AFTER_S:.0f}s of silence; requeue_after "
            f"{settings.requeue_after_s:.0f}s)"
        )
        assert result.state is JobState.SUCCEEDED
        assert result.runs == 1, "the dead worker never claimed it; the rescuer's run is the one"
        assert [(a.deployment, a.outcome, a.run) for a in result.attempts] == [("primary", "ok", 1)]
        assert finished_at - killed_at < 60, "seconds, not the reconciler's 600"
        assert "dead;" in rescuer.log(), "the rescuer's beat found the dead consumer"

        time.sleep(CONSUMER_DEAD_AFTER_S)  # a duplicate delivery would show by now
        again = handle.result()
        assert (again.finished_at, again.runs) == (result.finished_at, 1), "no second run"
        assert primary.chat_requests() == 1, "one provider call"
        assert watcher.llen(keys.queue_list(keys.queue)) == 0, "no message left behind"
        assert watcher.hlen(keys.unacked) == 0, "the rescuer acknowledged the only copy"
        assert not list(watcher.scan_iter(match=f"{keys.consumer_prefix}*")), "lists reclaimed"
    finally:
        watcher.close()
        client.close()
        first.stop()
        rescuer.stop()
        primary.stop()


def test_on_rabbitmq_a_worker_killed_between_delivery_and_claim_loses_nothing(
    namespace, redis_url, tmp_path
):
    """The same kill on RabbitMQ. Its ``popped`` window does not exist there (a delivery is one
    step of the server's, never half done by the consumer), so only ``claim``: the message is
    delivered and unacknowledged, the job not claimed. RabbitMQ gives an unacknowledged message
    back the moment its consumer's connection closes, and a SIGKILLed process's sockets close
    with it: no beat, lease or visibility timeout is waited for."""
    primary = Sim("primary", key="sim-primary-key-123456789")
    config = write_config(tmp_path / "turnout.yaml", [primary])
    env = default_delivery_env(
        stack_env(redis_url, namespace, config, [primary], **broker_env("rabbitmq"))
    )
    settings = settings_for(env)
    jobs = stack_queues(settings)[0]
    first = Worker({**env, ENV: "claim"}, tmp_path / "first.log").start()
    rescuer = Worker(env, tmp_path / "rescuer.log")
    client = Client(settings=settings)
    try:
        handle = client.submit("die holding me")
        assert first.process is not None
        first.process.wait_for_log(HOLD_LOG, timeout_s=30, what="held in the claim window")
        assert queue_depths(settings, [jobs])[jobs] == 0, "delivered: not waiting in the queue"
        rescuer.start()
        assert handle.state() is JobState.QUEUED, "not claimed yet"
        first.kill()
        killed_at = time.monotonic()

        result = handle.wait(timeout=120)
        finished_at = time.monotonic()
        print(f"\nrabbitmq claim window: finished {finished_at - killed_at:.1f}s after the kill")
        assert result.state is JobState.SUCCEEDED
        assert result.runs == 1, "the dead worker never claimed it; the rescuer's run is the one"
        assert [(a.deployment, a.outcome, a.run) for a in result.attempts] == [("primary", "ok", 1)]
        assert finished_at - killed_at < 60, "seconds, not the reconciler's 600"

        time.sleep(CONSUMER_DEAD_AFTER_S)  # a duplicate delivery would show by now
        again = handle.result()
        assert (again.finished_at, again.runs) == (result.finished_at, 1), "no second run"
        assert primary.chat_requests() == 1, "one provider call"
        assert queue_depths(settings, [jobs])[jobs] == 0, "no message left behind"
    finally:
        client.close()
        first.stop()
        rescuer.stop()
        primary.stop()
        delete_stack_queues(settings)
