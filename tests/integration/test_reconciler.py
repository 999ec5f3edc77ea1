"""The reconciler (beat) finds jobs whose message went missing, and they complete once."""

import time

from ops.amqp_queues import queue_depths, stack_queues
from producers.client import Client
from routing.keys import Keys
from routing.models import JobState
from tests.helpers import eventually
from tests.integration.harness import (
    Beat,
    Sim,
    Worker,
    broker_env,
    remove_queued_messages,
    settings_for,
    stack_env,
    write_config,
)


def test_a_job_whose_message_was_removed_by_hand_still_completes(
    broker, redis_url, namespace, tmp_path
):
    primary = Sim("primary", key="sim-primary-key-123456789")
    config = write_config(tmp_path / "turnout.yaml", [primary])
    env = stack_env(redis_url, namespace, config, [primary], **broker_env(broker))
    client = Client(settings=settings_for(env))
    worker = Worker(env, tmp_path / "worker.log")
    beat = Beat(env, tmp_path)
    try:
        handle = client.submit("my message will vanish")
        assert remove_queued_messages(settings_for(env)) == 1, "the message, removed by hand"
        worker.start()
        beat.start()
        result = handle.wait(timeout=60)
        assert result.state is JobState.SUCCEEDED
        assert result.runs == 1
        assert primary.chat_requests() == 1
        counts = client.store.redis.hgetall(client.keys.reconciler_counts)
        assert counts.get("queued") == "1"
    finally:
        client.close()
        beat.stop()
        worker.stop()
        primary.stop()


def test_a_killed_workers_job_is_rescued_by_lease_expiry_not_the_visibility_timeout(
    broker, redis_url, namespace, tmp_path
):
    primary = Sim("primary", key="sim-primary-key-123456789", latency_ms=3000)
    config = write_config(tmp_path / "turnout.yaml", [primary])
    env = stack_env(redis_url, namespace, config, [primary], **broker_env(broker))
    client = Client(settings=settings_for(env))
    first = Worker(env, tmp_path / "first.log").start()
    second = Worker(env, tmp_path / "second.log")
    beat = Beat(env, tmp_path)
    try:
        handle = client.submit("rescue me")
        eventually(
            lambda: primary.stats()["in_flight"], timeout=20, what="the job to reach the provider"
        )
        first.kill()
        killed_at = time.monotonic()
        settings = settings_for(env)
        if settings.broker_is_amqp:
            # RabbitMQ gives an unacknowledged message back when its consumer's connection
            # closes: the job's message waits in the queue again before any reconciler runs.
            jobs = stack_queues(settings)[0]
            eventually(
                lambda: queue_depths(settings, [jobs])[jobs] == 1,
                timeout=10,
                what="RabbitMQ to requeue the killed worker's message",
            )
        second.start()
        beat.start()
        result = handle.wait(timeout=60)
        rescued_s = time.monotonic() - killed_at
        print(f"\nrescued {rescued_s:.1f}s after the kill (lease 2s, visibility timeout 15s)")
        assert result.state is JobState.SUCCEEDED
        assert result.runs == 2
        assert rescued_s < 15, "the reconciler, not the visibility timeout, brought it back"
        counts = client.store.redis.hgetall(client.keys.reconciler_counts)
        if settings.broker_is_amqp:
            # The requeued message may claim the job before the reconciler sees its expired
            # lease (then it re-sends nothing), or after (then its spare message finds the job
            # finished): never more than one re-send, and one run either way (above).
            assert counts.get("lease_expired") in (None, "1")
        else:
            assert counts.get("lease_expired") == "1"
    finally:
        client.close()
        beat.stop()
        first.stop()
        second.stop()
        primary.stop()


def test_a_lost_bulk_message_is_sent_again_to_its_own_bulk_queue(redis_url, namespace, tmp_path):
    """The job record names its lane's queue: the reconciler re-sends there, so a worker of
    the bulk lane alone (which never looks at the interactive queue) runs it."""
    from routing.lanes import worker_queues

    primary = Sim("primary", key="sim-primary-key-123456789")
    config = write_config(tmp_path / "turnout.yaml", [primary])
    env = stack_env(redis_url, namespace, config, [primary])
    settings = settings_for(env)
    keys = Keys(namespace)
    client = Client(settings=settings, lane="bulk")
    worker = Worker(env, tmp_path / "worker.log", queues=worker_queues(keys, settings, ("bulk",)))
    beat = Beat(env, tmp_path)
    try:
        handle = client.submit("my bulk message will vanish")
        queue = str(client.store.redis.hget(keys.job(handle.job_id), "queue"))
        assert queue.startswith("bulk-"), "the record names its queue"
        assert client.store.redis.delete(keys.queue_list(queue)) == 1, "removed by hand"
        worker.start()
        beat.start()
        result = handle.wait(timeout=60)
        assert result.state is JobState.SUCCEEDED
        assert result.runs == 1
        assert client.store.redis.hgetall(client.keys.reconciler_counts).get("queued") == "1"
    finally:
        client.close()
        beat.stop()
        worker.stop()
        primary.stop()
