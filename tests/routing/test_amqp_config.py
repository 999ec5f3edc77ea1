"""The Celery configuration on a RabbitMQ broker (TURNOUT_BROKER_URL=amqp://): pure, no broker."""

from __future__ import annotations

import pytest
from celery.utils.quorum_queues import detect_quorum_queues
from pydantic import ValidationError

from producers.publisher import JobPublisher
from routing.amqp_transport import Transport, locked_frame_writer
from routing.celery_config import (
    AMQP_TRANSPORT,
    celery_config,
    create_app,
    delivery_timeout_s,
    max_job_deadline_s,
    queue_name,
    reschedule_countdown_s,
)
from routing.settings import CoreSettings

AMQP = "amqp://guest:s3cret-pw@127.0.0.1:5672//"


def amqp_settings(**extra: str) -> CoreSettings:
    return CoreSettings.model_validate(
        {"TURNOUT_BROKER_URL": AMQP, "TURNOUT_NAMESPACE": "ns1", **extra}
    )


def test_the_broker_is_redis_unless_told():
    settings = CoreSettings.model_validate({"REDIS_URL": "redis://127.0.0.1:6379/3"})
    assert settings.broker_url == "redis://127.0.0.1:6379/3"
    assert not settings.broker_is_amqp
    assert celery_config(settings)["broker_transport"] == "routing.broker:Transport"


def test_on_rabbitmq_queues_are_quorum_queues_named_after_the_namespace():
    settings = amqp_settings()
    config = celery_config(settings)
    assert config["broker_url"] == AMQP
    assert config["broker_transport"] == AMQP_TRANSPORT
    assert "result_backend" not in config, "no task stores a result: state stays in Redis records"
    assert config["task_default_queue"] == "ns1.jobs"
    queues = {queue.name: queue for queue in config["task_queues"]}
    assert set(queues) == {"ns1.jobs", "ns1.control"}
    for queue in queues.values():
        assert queue.durable
        assert queue.queue_arguments == {"x-queue-type": "quorum"}
        assert queue.exchange.type == "topic", "native delayed delivery routes through topics"
    assert config["task_routes"]["turnout.reconcile"] == {"queue": "ns1.control"}
    assert (config["task_acks_late"], config["task_reject_on_worker_lost"]) == (True, True)
    assert config["worker_prefetch_multiplier"] == 1
    assert "visibility_timeout" not in config
    app = create_app(settings)
    assert detect_quorum_queues(app, "amqp") == (True, "ns1.jobs"), "global QoS goes off"


def test_on_rabbitmq_the_consumer_timeout_bounds_the_longest_job():
    settings = amqp_settings(TURNOUT_AMQP_CONSUMER_TIMEOUT="900", TURNOUT_VISIBILITY_TIMEOUT="60")
    assert delivery_timeout_s(settings) == 900
    assert max_job_deadline_s(settings) == 900 - settings.lease_s - 5
    assert reschedule_countdown_s(settings, 10_000) == 225
    redis = CoreSettings.model_validate({"TURNOUT_VISIBILITY_TIMEOUT": "60"})
    assert delivery_timeout_s(redis) == 60


def test_queue_names_carry_the_namespace_only_on_rabbitmq():
    assert queue_name(amqp_settings(), "jobs") == "ns1.jobs"
    assert queue_name(CoreSettings.model_validate({"TURNOUT_NAMESPACE": "ns1"}), "jobs") == "jobs"


def test_producers_ask_rabbitmq_for_publisher_confirms_and_workers_do_not():
    app = create_app(amqp_settings())
    assert "confirm_publish" not in app.conf.broker_transport_options
    publisher = JobPublisher(app, "ns1.jobs")
    try:
        assert publisher._connections.connection.transport_options["confirm_publish"] is True
    finally:
        publisher.close()


def test_an_unknown_broker_scheme_is_refused_without_showing_the_url():
    with pytest.raises(ValidationError) as refused:
        CoreSettings.model_validate({"TURNOUT_BROKER_URL": "kafka://user:s3cret-pw@host:9092"})
    assert "TURNOUT_BROKER_URL must start with one of" in str(refused.value)
    assert "s3cret-pw" not in str(refused.value)


def test_frames_are_written_one_at_a_time():
    assert Transport.Connection.__init__ is not None
    written: list[bytes] = []

    class Sink:
        def write(self, data: bytes) -> None:
            written.append(bytes(data))

    class Conn:
        frame_max = 131072
        bytes_sent = 0

    write = locked_frame_writer(Conn(), Sink())
    write(8, 0, None, None, None)  # a heartbeat frame
    assert written == [b"\x08\x00\x00\x00\x00\x00\x00\xce"]
