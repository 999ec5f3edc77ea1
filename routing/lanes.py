"""Priority lanes: which Celery queue a job's message goes to, and which queues a worker takes.

A person waiting for an answer and a batch of 100k lines share one fleet. With one queue, a
batch enqueued first makes the person wait for the batch. So each job carries a lane:

* ``interactive`` (Client, ``turnout serve``, ``turnout submit``): the ``jobs`` queue;
* ``bulk`` (``turnout batch``): one of ``TURNOUT_BULK_QUEUES`` queues ``bulk-0`` ..
  ``bulk-<n-1>``, one per batch.

A worker takes its next message from the interactive queue whenever it holds one, then the
control queue (beat's ticks), then the bulk queues in turn (routing.broker orders each fetch so;
``worker_queues`` gives the order). A free worker slot is all an interactive job waits for,
however long the bulk backlog. A worker started with ``--lanes interactive`` consumes only the
interactive (and control) queue, so a deployment can keep workers for the web app alone.

Fairness inside bulk: a queue per batch, consumed round-robin. Each producer (one ``Client``,
one ``turnout batch``) sends its bulk jobs to one bulk queue, the shortest when it first sends
one (ties go by a fleet-wide counter, so batches starting together pick different queues).
Workers take the bulk queues in turn, one message from each non-empty queue before the next
from any (kombu's round-robin cycle, which the broker keeps for bulk), so two batches running
at once each get half the slots that free up, whatever their sizes and whichever came first.
Why not Celery's priorities: on Redis they are a handful of fixed levels (kombu's
``priority_steps``), which order jobs but cannot interleave any number of batches; and why a
fixed set of queues rather than one per batch: workers declare their queues at start, and a
queue made per batch would need every worker told to consume it (and to stop) at run time. With
more batches at once than bulk queues, those that share a queue share it first-come-first-served.

Disabled (``TURNOUT_LANES=false``) every job goes to the one ``jobs`` queue, as before lanes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import get_args

import redis

from routing.errors import ConfigError
from routing.keys import Keys
from routing.models import Lane
from routing.settings import CoreSettings

LANES: tuple[Lane, ...] = get_args(Lane)


def parse_lanes(text: str | Iterable[str]) -> tuple[Lane, ...]:
    """``"interactive,bulk"`` (or a list of names) as lanes, in lane order; ConfigError on an
    unknown one."""
    names = text.split(",") if isinstance(text, str) else list(text)
    wanted = {name.strip() for name in names if name.strip()}
    unknown = sorted(wanted - set(LANES))
    if unknown or not wanted:
        raise ConfigError(
            f"unknown lane(s) {', '.join(unknown) or '(none given)'}: choose from "
            f"{', '.join(LANES)}"
        )
    return tuple(lane for lane in LANES if lane in wanted)


def lanes_on(settings: CoreSettings) -> bool:
    """Lanes are built on the Redis transport's fetch order (routing.broker); on RabbitMQ a
    worker consumes its queues side by side, with no order among them, so there every job
    shares the one jobs queue until lanes are built for it (README, Priority lanes)."""
    return settings.lanes and not settings.broker_is_amqp


def bulk_queues(keys: Keys, settings: CoreSettings) -> list[str]:
    return [keys.bulk_queue(slot) for slot in range(settings.bulk_queues)]


def worker_queues(keys: Keys, settings: CoreSettings, lanes: Sequence[Lane] = LANES) -> list[str]:
    """The queues a worker of ``lanes`` consumes (it takes them control first, then
    interactive, then bulk: fetch_rank). Every worker takes the control queue (beat's ticks)."""
    queues = [keys.queue] if "interactive" in lanes or not lanes_on(settings) else []
    queues.append(keys.control_queue)
    if "bulk" in lanes and lanes_on(settings):
        queues += bulk_queues(keys, settings)
    return queues


def fetch_rank(keys: Keys, queue: str) -> int:
    """Where ``queue`` comes in a worker's fetch: 0 control, 1 interactive, 2 bulk (the bulk
    queues keep kombu's round-robin order among themselves). Beat's ticks go first: they are
    few and short, and behind a backlog of interactive jobs no health check, failback probe or
    reconcile would run until it drained."""
    if queue == keys.control_queue:
        return 0
    return 1 if queue == keys.queue else 2


def pick_bulk_queue(client: redis.Redis, keys: Keys, settings: CoreSettings) -> str:
    """The bulk queue a new batch sends its jobs to: the shortest now; among equals, the one
    the fleet-wide turn counter points at first (two batches starting at once, both seeing
    every queue empty, take different ones). With lanes off, the one jobs queue."""
    if not lanes_on(settings):
        return keys.queue
    queues = bulk_queues(keys, settings)
    pipe = client.pipeline(transaction=False)
    pipe.incr(keys.bulk_turn)
    for queue in queues:
        pipe.llen(keys.queue_list(queue))
    turn, *lengths = pipe.execute()
    count = len(queues)
    start = int(turn) % count
    best = min(range(count), key=lambda slot: (int(lengths[slot]), (slot - start) % count))
    return queues[best]


def lane_queue(keys: Keys, settings: CoreSettings, lane: Lane, bulk_queue: str) -> str:
    """The queue of a job of ``lane``; ``bulk_queue`` is this producer's (``pick_bulk_queue``)."""
    if lane == "bulk" and lanes_on(settings):
        return bulk_queue
    return keys.queue
