"""A stack's queues on RabbitMQ, as the tools around it see them: how many messages wait in each
(``turnout status``, the exporter, tests), emptying one (a test removing a message by hand) and
deleting them (a test's or a benchmark's end). The Redis side is ops.redis_namespace.

Depths come from a passive ``queue.declare``: it asserts the queue exists and answers with its
ready message count (unacknowledged ones, held by workers, are not in it; nor are they in a
Redis queue's LLEN), without the management plugin, which a RabbitMQ need not run. A queue
that does not exist yet (no worker has declared it) has no messages waiting.
"""

from __future__ import annotations

from collections.abc import Iterable

from amqp.exceptions import AMQPError, NotFound  # type: ignore[import-untyped]
from kombu.connection import Connection

from producers.redis_patience import redacted
from routing.celery_config import queue_name
from routing.keys import Keys
from routing.settings import CoreSettings


class BrokerUnreachable(RuntimeError):
    """RabbitMQ did not answer a read; the text never carries the URL's password."""


#: Seconds to reach RabbitMQ before a read gives up (a status must not hang on a dead broker).
CONNECT_TIMEOUT_S = 5.0


def stack_queues(settings: CoreSettings) -> list[str]:
    """The stack's queue names on the broker: the jobs queue, then the control queue."""
    keys = Keys(settings.namespace)
    return [queue_name(settings, keys.queue), queue_name(settings, keys.control_queue)]


def _connection(settings: CoreSettings) -> Connection:
    return Connection(settings.broker_url, connect_timeout=CONNECT_TIMEOUT_S)  # type: ignore[no-untyped-call]


def queue_depths(settings: CoreSettings, names: Iterable[str]) -> dict[str, int]:
    """Messages waiting (ready, not yet delivered) in each of ``names``; 0 for a queue that
    does not exist yet. BrokerUnreachable when RabbitMQ does not answer."""
    try:
        return _queue_depths(settings, names)
    except (OSError, AMQPError) as exc:
        reason = redacted(f"{type(exc).__name__}: {exc}", settings.broker_url)
        raise BrokerUnreachable(f"RabbitMQ unreachable: {reason}") from None


def _queue_depths(settings: CoreSettings, names: Iterable[str]) -> dict[str, int]:
    depths: dict[str, int] = {}
    with _connection(settings) as connection:
        connection.connect()
        for name in names:
            channel = connection.channel()
            try:
                depths[name] = int(channel.queue_declare(name, passive=True).message_count)
            except NotFound:  # closes the channel, not the connection
                depths[name] = 0
            else:
                channel.close()
    return depths


def purge(settings: CoreSettings, name: str) -> int:
    """Drop every ready message of queue ``name``; how many went."""
    with _connection(settings) as connection:
        channel = connection.channel()
        try:
            return int(channel.queue_purge(name) or 0)
        finally:
            channel.close()


def delete_stack_queues(settings: CoreSettings) -> None:
    """Delete the stack's queues and their exchanges (what a test or a benchmark leaves)."""
    with _connection(settings) as connection:
        for name in stack_queues(settings):
            for delete in ("queue_delete", "exchange_delete"):
                channel = connection.channel()
                try:
                    getattr(channel, delete)(name)
                except NotFound:
                    continue
                channel.close()
