"""kombu's Redis transport, with no window in which a popped message can vanish, and the
messages of a dead worker back in seconds; one Redis client per channel, on a blocking pool.

Why the consuming side is replaced (issue 18; ../shared/celery-reliability.md §1.2). kombu
pops with BRPOP, then writes the message to its ``unacked`` hash in a second round trip. A
worker SIGKILLed between the two loses the message outright; one killed after it, but before
its job's claim, leaves the message in ``unacked`` for the visibility timeout (an hour). Either
way only the reconciler brought the job back, TURNOUT_REQUEUE_AFTER (600 s) later. Here:

* **The pop is a move.** A message leaves its queue only into this consumer's *popped* list
  (Keys.consumer_popped): BLMOVE when blocking (as rq does; dramatiq's Lua fetch does the
  same), fetch_message.lua when not. BLMOVE takes one source and BRPOP's several-queue
  atomicity has no moving twin, so the channel blocks on the jobs (interactive) queue only,
  with kombu's ``brpop_timeout`` (1 s), and between blocks runs fetch_message.lua over every
  queue: an interactive job never waits on an idle worker, a beat tick or the first bulk job
  on an idle worker waits at most 1 s, and a busy worker spends one round trip per message.
  A worker serving a batch (a bulk message delivered in the last BULK_ACTIVE_S) blocks for
  BULK_POLL_S instead: a batch that sends its jobs as others finish finds its bulk queue
  empty at most fetches, and must not wait a second each time; that costs an idle-looking
  worker two round trips per BULK_POLL_S for those seconds only.
* **Lanes order the fetch** (routing.lanes). Stock kombu BRPOPs its queues in a round-robin
  cycle, which is fairness, not priority. Here each fetch tries the interactive queue first,
  then control, then the bulk queues in kombu's cycle: a worker whose slot frees takes a
  waiting interactive job before any bulk one, and batches (one bulk queue each) in turn.
* **Bookkeeping moves it again, atomically.** deliver_message.lua writes kombu's unacked entry
  and index, adds the tag to the consumer's *held* set and takes the message off *popped*, in
  one script: at every moment the message is in the queue, in popped, or in unacked + held.
  Acks and rejects take the tag off held with kombu's own entries.
* **Dead consumers are reclaimed by the living.** Every consuming process beats every
  CONSUMER_BEAT_S (reclaim_consumers.lua, from kombu's event loop timer, not the consuming
  path, so a worker whose slots are all busy still beats). A consumer silent for
  CONSUMER_DEAD_AFTER_S is dead: the beat of any live one moves its popped messages back to
  their queues and restores its held tags with kombu's ``restore_by_tag`` (the queue is found
  through kombu's bindings, as its visibility sweep does). Measured on this machine
  (tests/integration/test_pop_to_claim_kill.py, default settings, no beat): killed before its
  claim, a job finished 8.1-8.2 s after the kill; killed between the move and its bookkeeping,
  8.7-9.5 s after the move (the process fell silent then). Before, the same claim-window kill
  with the stock transport and beat running finished 602.7 s after the kill (the reconciler's
  TURNOUT_REQUEUE_AFTER). Nearly all of the 8 s is the silence that tells a dead process
  from a slow one.

What it costs and what it keeps. At-least-once holds (a message is always somewhere a live
process or the reclaim will deliver); a job never runs twice at once (a message put back for a
consumer wrongly judged dead meets the job's lease at claim, and waits for it); the normal path
sends nothing twice (only the dead are reclaimed). A consumer whose event loop stalls longer
than CONSUMER_DEAD_AFTER_S is judged dead: its messages are redelivered, and their claims wait
for the leases its threads still renew. kombu's visibility-timeout sweep stays as the last net
(a reclaimer that dies mid-reclaim), and the reconciler still re-sends jobs whose message was
never sent (a producer that died between storing a job and sending it).

One Redis client per channel: kombu builds a new ``redis.Redis`` object for every operation
that has no client at hand, every ack and every bookkeeping write; building one costs more than
the round trip it serves, and reusing one per channel cut Celery's CPU per message by ~15% here
(ops/bench). Selected with Celery's ``broker_transport`` setting; URLs stay ``redis://``, so
Flower and other tools keep recognising the broker.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from queue import Empty
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from routing.keys import Keys
from routing.kill_window import hold_if_asked
from routing.lanes import fetch_rank
from routing.redis_scripts import source

log = logging.getLogger("turnout.broker")

#: Longest a thread waits for a broker connection before the operation fails.
POOL_WAIT_S = 20
#: How often a consuming process says it is alive, and reclaims the dead.
CONSUMER_BEAT_S = 2.0
#: A worker that delivered a bulk message this recently blocks on the interactive queue for
#: BULK_POLL_S at a time, not kombu's 1 s: the bulk queues are looked at between blocks, and a
#: batch that sends as its jobs finish (``turnout batch``'s window) must not wait a second a job.
BULK_ACTIVE_S = 10.0
BULK_POLL_S = 0.05
#: Silence after which a consumer is dead and what it held goes back to the queues: four
#: missed beats, so a busy event loop is not taken for a dead one.
CONSUMER_DEAD_AFTER_S = 8.0


class _ProcessId:
    pid: int | None = None
    value: str = ""
    #: A channel of this process has sent a consuming command already.
    consumed = False


def consumer_id() -> str:
    """This process's consumer id: hostname, pid and a random part (a restarted container
    reuses its hostname and pid 1; it must not inherit the dead one's lists). A forked child
    gets its own."""
    if _ProcessId.pid != os.getpid():
        _ProcessId.pid = os.getpid()
        _ProcessId.value = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return _ProcessId.value


class QoS(kombu_redis.QoS):
    channel: Channel

    def append(self, message: Any, delivery_tag: str) -> None:
        popped = self.channel.take_popped()
        if popped is None:  # not from this channel's consuming (basic_get, a rejected inbound)
            super().append(message, delivery_tag)
            return
        queue, raw = popped
        delivery = message.delivery_info
        entry = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        keys = self.channel.turnout_keys
        me = consumer_id()
        with self.channel.conn_or_acquire() as client:
            client.eval(
                source("deliver_message"),
                4,
                keys.unacked,
                keys.unacked_index,
                keys.consumer_popped(me, queue),
                keys.consumer_held(me),
                delivery_tag,
                entry,
                time.time(),
                raw,
            )
        virtual.QoS.append(self, message, delivery_tag)

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        # kombu's client prefixes SREM's key itself: give it the key without the prefix.
        held = self.channel.turnout_keys.consumer_held(consumer_id())
        unprefixed = held.removeprefix(self.channel.global_keyprefix)
        return super()._remove_from_indices(delivery_tag, pipe).srem(unprefixed, delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS
    #: kombu's typed its tuple by length: one more option is another type to mypy.
    from_transport_options = (  # type: ignore[assignment]
        *kombu_redis.Channel.from_transport_options,
        "fleet_queues",
    )
    #: Every queue of the fleet (routing.celery_config: each lane's and beat's), not only this
    #: worker's: a worker of one lane reclaiming a dead worker of another must put back what
    #: that one had popped from its own queues.
    fleet_queues: tuple[str, ...] | list[str] = ()
    _reused_client: Any = None
    #: The next consuming command blocks (BLMOVE): the last fetch found every queue empty.
    _block_next = False
    #: When this channel last delivered a bulk message (time.monotonic; routing.lanes).
    _bulk_seen_at = float("-inf")
    #: What the consuming command in flight was: ("fetch" | "block", its queues).
    _sent: tuple[str, list[str]] = ("fetch", [])
    #: The message just popped, (queue, raw), until deliver_message.lua takes it off popped.
    _popped: tuple[str, bytes] | None = None
    #: This channel beat before its first pop: a consumer unknown to the consumers set when it
    #: dies would never be reclaimed.
    _beaten = False
    #: The socket the last consuming command went out on (see ``_recover_orphans``).
    _sent_on: Any = None
    #: ``active_queues`` until a consume or a cancel changes them.
    _active_cache: list[str] | None = None

    @property
    def active_queues(self) -> list[str]:
        """kombu's, computed once per change rather than on every tick of the event loop,
        which asks it each time (5 % of a loaded worker's CPU, measured). Read only."""
        cached = self._active_cache
        if cached is None:
            fanout = self.active_fanout_queues
            cached = list(dict.fromkeys(q for q in self._active_queues if q not in fanout))
            self._active_cache = cached
        return cached

    def basic_consume(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().basic_consume(*args, **kwargs)
        finally:
            self._active_cache = None

    def basic_cancel(self, consumer_tag: Any) -> Any:
        try:
            return super().basic_cancel(consumer_tag)
        finally:
            self._active_cache = None

    @cached_property
    def turnout_keys(self) -> Keys:
        keys = Keys(self.global_keyprefix.removesuffix(":"))
        if keys.prefix != self.global_keyprefix:
            raise ValueError(
                f"routing.broker needs kombu's global_keyprefix to be '<namespace>:', not "
                f"{self.global_keyprefix!r} (routing.celery_config sets it)"
            )
        return keys

    def _get_pool(self, asynchronous: bool = False) -> Any:
        """The pool for acks and bookkeeping blocks when all connections are busy, instead of
        failing: kombu's default pool raises past ``max_connections`` (10), and with hundreds of
        threads finishing tasks at once a failed ack is a message redelivered an hour later and
        a prefetch slot lost until reconnect. The poller's pool (asynchronous) is unchanged."""
        if asynchronous:
            return super()._get_pool(asynchronous=True)
        params = self._connparams(asynchronous=False)
        self.keyprefix_fanout = self.keyprefix_fanout.format(db=params["db"])
        return redis.BlockingConnectionPool(timeout=POOL_WAIT_S, **params)

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client is not None:
            yield client
            return
        if self._reused_client is None:
            self._reused_client = self._create_client()
        yield self._reused_client

    # --- consuming: a pop is a move into this consumer's popped list -------------------------

    def _blocking_queue(self, queues: list[str]) -> str:
        """The queue a block waits on: the first lane queue of the fetch order (interactive
        when consumed: such a job never waits on an idle worker), else the control queue."""
        control = self.turnout_keys.control_queue
        return next((queue for queue in queues if queue != control), queues[0])

    def _fetch_order(self) -> list[str]:
        """The queues in the order a fetch tries them: control, interactive, then the bulk
        queues in kombu's round-robin cycle (``rotate`` after each delivery moves the queue
        served to the back): a priority between lanes, fairness between batches
        (routing.lanes). The sort is stable, so the cycle's order survives within a rank."""
        keys = self.turnout_keys
        cycle = self._queue_cycle.consume(len(self.active_queues))
        return sorted(cycle, key=lambda queue: fetch_rank(keys, queue))

    def _brpop_start(self, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._fetch_order()
        if not queues:
            return
        keys, me = self.turnout_keys, consumer_id()
        if not self._beaten:
            self.beat()
        sock = self.client.connection._sock
        if sock is not self._sent_on and (self._sent_on is not None or _ProcessId.consumed):
            self._recover_orphans(queues)
        self._sent_on, _ProcessId.consumed = sock, True
        command: list[Any]
        if self._block_next:
            queue = self._blocking_queue(queues)
            if time.monotonic() - self._bulk_seen_at < BULK_ACTIVE_S:
                timeout = min(timeout or BULK_POLL_S, BULK_POLL_S)
            self._sent = ("block", [queue])
            command = [
                "BLMOVE",
                keys.queue_list(queue),
                keys.consumer_popped(me, queue),
                "RIGHT",
                "LEFT",
                timeout or 0,
            ]
        else:
            self._sent = ("fetch", list(queues))
            lists = [keys.queue_list(q) for q in queues]
            popped = [keys.consumer_popped(me, q) for q in queues]
            command = ["EVAL", source("fetch_message"), len(lists) * 2, *lists, *popped]
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]
        self.client.connection.send_command(*command)

    def _brpop_read(self, **options: Any) -> bool:
        try:
            mode, queues = self._sent
            try:
                reply = self.client.parse_response(
                    self.client.connection, "BLMOVE" if mode == "block" else "EVAL", **options
                )
            except self.connection_errors:
                # if there's a ConnectionError, disconnect so the next
                # iteration will reconnect automatically.
                self.client.connection.disconnect()
                raise
            if mode == "fetch" and reply:
                queue, raw = queues[int(reply[0]) - 1], reply[1]
            elif mode == "block" and reply is not None:
                queue, raw = queues[0], reply
            else:
                # An empty fetch blocks next; a block that timed out fetches next, which looks
                # at every queue (beat's ticks included) before blocking again.
                self._block_next = mode == "fetch"
                raise Empty()
            self._block_next = False
            self._queue_cycle.rotate(queue)
            if fetch_rank(self.turnout_keys, queue) == 2:
                self._bulk_seen_at = time.monotonic()
            if queue == self.turnout_keys.queue:
                hold_if_asked("popped", f"a message moved to {consumer_id()}'s popped list")
            self._deliver_popped(queue, raw)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]  # as kombu's own _brpop_read
            self._flush_brpop_reauth()

    def _deliver_popped(self, queue: str, raw: bytes) -> None:
        self._popped = (queue, raw)
        try:
            self.connection._deliver(loads(bytes_to_str(raw)), queue)
        except Exception:
            self._put_back(queue, raw)
            raise
        if self.take_popped() is not None:
            # Delivered without unacked bookkeeping (a no_ack consumer, such as a control
            # reply): it is gone from the broker, as with kombu's BRPOP.
            with self.conn_or_acquire() as client:
                client.execute_command(
                    "LREM", self.turnout_keys.consumer_popped(consumer_id(), queue), 1, raw
                )

    def _put_back(self, queue: str, raw: bytes) -> None:
        """A message whose delivery failed here goes back to its queue; if Redis refuses even
        that, it stays in popped, and the reconciler re-sends its job (it is still queued)."""
        if self.take_popped() is None:
            return
        keys = self.turnout_keys
        try:
            with self.conn_or_acquire() as client, client.pipeline(transaction=True) as pipe:
                pipe.execute_command("LREM", keys.consumer_popped(consumer_id(), queue), 1, raw)
                pipe.execute_command("RPUSH", queue, raw)  # kombu's client prefixes RPUSH
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("a message of %s stays in this consumer's popped list: %s", queue, exc)

    def _recover_orphans(self, queues: list[str]) -> None:
        """A new connection (a reconnect, or a new channel after the last one failed): a move
        whose reply was lost with the old socket (Redis moved the message, the reply never
        arrived) left the message in this consumer's popped list, where nobody would deliver it
        while this process lives. No reply is pending on a fresh socket and deliveries run on
        this one thread, so whatever popped holds now is such an orphan: back to its queue."""
        keys, me = self.turnout_keys, consumer_id()
        moved = 0
        with self.conn_or_acquire() as client:
            for queue in queues:
                source, target = keys.consumer_popped(me, queue), keys.queue_list(queue)
                while client.execute_command("LMOVE", source, target, "RIGHT", "RIGHT"):
                    moved += 1
        if moved:
            log.warning("%d message(s) whose delivery was cut off went back to the queue", moved)

    def take_popped(self) -> tuple[str, bytes] | None:
        popped, self._popped = self._popped, None
        return popped

    # --- liveness: beat, and reclaim what dead consumers held --------------------------------

    def beat(self) -> None:
        """Say this consumer is alive; put back what consumers silent past
        CONSUMER_DEAD_AFTER_S held (reclaim_consumers.lua, then kombu's restore_by_tag)."""
        keys = self.turnout_keys
        queues = sorted(set(self.active_queues) | set(self.fleet_queues))
        with self.conn_or_acquire() as client:
            reply = client.eval(
                source("reclaim_consumers"),
                2 + len(queues),
                keys.consumers,
                keys.consumer_prefix,
                *(keys.queue_list(q) for q in queues),
                consumer_id(),
                int(CONSUMER_DEAD_AFTER_S * 1000),
            )
            self._beaten = True
            texts = [bytes_to_str(item) if isinstance(item, bytes) else item for item in reply]
            split = texts.index("")
            dead, moved, tags = texts[:split], int(texts[split + 1]), texts[split + 2 :]
            for tag in tags:
                self.qos.restore_by_tag(tag, client=client)
        if dead:
            # A worker that stopped cleanly gave its messages back itself: nothing to warn of.
            (log.warning if moved or tags else log.info)(
                "consumer(s) %s silent for %.0fs: dead; %d popped and %d unacknowledged "
                "message(s) put back",
                ", ".join(dead),
                CONSUMER_DEAD_AFTER_S,
                moved,
                len(tags),
            )


class Transport(kombu_redis.Transport):
    Channel = Channel

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)
        cycle: Any = self.cycle
        old = getattr(cycle, "_turnout_beat_tref", None)
        if old is not None:
            old.cancel()

        def beat() -> None:
            for channel in list(cycle._channels):
                if channel.active_queues:
                    try:
                        channel.beat()
                    except Exception as exc:  # never into the event loop; the next beat retries
                        log.warning("consumer beat failed: %s", exc)
                    return

        cycle._turnout_beat_tref = loop.call_repeatedly(CONSUMER_BEAT_S, beat)
