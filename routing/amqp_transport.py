"""kombu's py-amqp transport, safe to write to from the threads pool: one lock per connection
around every frame it sends.

Why. turnout's workers run jobs on Celery's threads pool, and with ``acks_late`` each thread
acknowledges its own message when its job ends: on the consumer's connection, which the
worker's event loop reads and writes at the same time; the worker's task events go out from
every thread on one shared connection too. py-amqp has no lock anywhere (``amqp/connection.py``,
``method_framing.py``): its frame writer fills one buffer per connection, so two threads
writing at once corrupt each other's frames. Measured here before this transport, a 64-thread
worker draining 1000 jobs stalled after ~770 and RabbitMQ closed its connections for missed
heartbeats (``tests/integration/test_batch_redis_restart.py`` on RabbitMQ). A frame is a few
hundred bytes written with one ``sendall``: the lock is held for microseconds.

Only writes are serialized: nothing but the event loop reads a worker's shared connections,
which is why publisher confirms (a publish that then reads the broker's ack) are asked for on
producers' own connections only (routing.celery_config, producers.publisher), never on the
worker's shared ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from amqp.method_framing import frame_writer  # type: ignore[import-untyped]
from kombu.transport import pyamqp


def locked_frame_writer(connection: Any, transport: Any) -> Callable[..., Any]:
    """py-amqp's frame writer for ``connection``, one thread at a time."""
    write = frame_writer(connection, transport)
    lock = threading.Lock()

    def write_one_at_a_time(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return write(*args, **kwargs)

    return write_one_at_a_time


class Connection(pyamqp.Connection):
    """kombu's py-amqp connection with its frames written under a lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("frame_writer", locked_frame_writer)
        super().__init__(*args, **kwargs)


class Transport(pyamqp.Transport):
    """Selected with Celery's ``broker_transport`` for amqp:// brokers (routing.celery_config)."""

    Connection = Connection
