"""Every Redis key and channel turnout uses, in one place.

All keys start with the namespace (TURNOUT_NAMESPACE, default ``turnout``), so several stacks or
test runs share one Redis without touching each other. Celery's own keys (queues, unacked
messages) carry the same prefix through kombu's ``global_keyprefix``.

The Lua scripts (routing/scripts) receive every key they touch through KEYS, built here. Two
kinds of key are derived inside a script instead, and both are said where they are:

- time buckets (a route's minutes and days, the job counts' days): the bucket holding Redis's
  ``TIME`` is ``<base>:<bucket number>`` (``bucket_key`` in ``_clock.lua``); scripts get the base
  key. Readers spell the same keys with ``bucket_key`` below, with a bucket number from Redis's
  own clock (routing.redis_clock), so a worker and a reader with skewed clocks agree.
- job hashes named by the ``due`` index (reconcile_due.lua learns them only as it reads it):
  ``job_prefix`` followed by the job id.
- a dead consumer's lists (reclaim_consumers.lua learns its id from ``consumers``):
  ``consumer_popped`` and ``consumer_held``, spelt from ``consumer_prefix`` as those say.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Widths of the time buckets the scripts keep counters in (``MINUTE_MS``, ``DAY_MS`` in
#: ``_clock.lua``).
MINUTE_MS = 60_000
DAY_MS = 86_400_000
#: How many of a route's latest latencies record_outcome.lua keeps (``RouteKeys.latencies``):
#: enough for a p95 of a few hundred calls, a fixed cost per call.
LATENCY_SAMPLES = 256


def bucket_key(base: str, bucket: int) -> str:
    """The key of time bucket number ``bucket`` (Redis ms // its width) under ``base``: what
    ``bucket_key`` in ``_clock.lua`` writes."""
    return f"{base}:{bucket}"


@dataclass(frozen=True)
class RouteKeys:
    """One route's keys (a route: a deployment with one of its credentials).

    ``breaker`` is a hash: state, consecutive, open_until, reopens, closed_at, cool_until,
    reason, lat (EWMA of successful latencies, ms), the rate-limit buckets (rpm_tokens, rpm_ts,
    tpm_tokens, tpm_ts) and health (what beat's checks concluded).
    """

    breaker: str

    @classmethod
    def under(cls, route_prefix: str, route_id: str) -> RouteKeys:
        """The keys of ``route_id`` below ``Keys.route_prefix`` (what routers are given)."""
        return cls(f"{route_prefix}{route_id}")

    @property
    def probes(self) -> str:
        """Sorted set: half-open probe permits, attempt id scored by expiry."""
        return f"{self.breaker}:probes"

    @property
    def inflight(self) -> str:
        """Sorted set: calls in flight, attempt id scored by expiry (a dead worker's expire)."""
        return f"{self.breaker}:inflight"

    @property
    def window(self) -> str:
        """Hash: ``c<bucket>``/``f<bucket>``, calls and failures per tenth of the breaker's
        failure-rate window."""
        return f"{self.breaker}:window"

    @property
    def health(self) -> str:
        """Hash: the last health check (ok, latency_ms, error_class, detail, checked_at,
        probe)."""
        return f"{self.breaker}:health"

    @property
    def health_check_locks(self) -> str:
        """Base of the health-check locks: ``<this>:<slot>`` (slot: Redis time // the check
        interval) is held by whichever beat checks the route in that interval."""
        return f"{self.breaker}:hc"

    @property
    def minutes(self) -> str:
        """Base of the per-minute statistics hashes (calls, errors: an error class or a slow call
        the breaker failed, failures as the breaker counts them, latency buckets b<i>; kept ten
        minutes): see ``minute``."""
        return f"{self.breaker}:m"

    def minute(self, minute: int) -> str:
        """Hash: the statistics of minute number ``minute`` (Redis ms // MINUTE_MS)."""
        return bucket_key(self.minutes, minute)

    @property
    def latencies(self) -> str:
        """List: the route's latest call latencies, newest first, each ``<ms>:<Redis ms>`` (when
        it was recorded); record_outcome.lua keeps ``LATENCY_SAMPLES`` of them, ten minutes."""
        return f"{self.breaker}:lat"

    @property
    def days(self) -> str:
        """Base of the per-UTC-day statistics hashes (calls, errors, tokens, cost; kept three
        days): see ``day``."""
        return f"{self.breaker}:d"

    def day(self, day: int) -> str:
        """Hash: the statistics of UTC day number ``day`` (Redis ms // DAY_MS)."""
        return bucket_key(self.days, day)

    @property
    def totals(self) -> str:
        """Hash: statistics since the start (calls, err:<class>, b<i>, lat_sum, tokens, cost)."""
        return f"{self.breaker}:totals"


@dataclass(frozen=True)
class KeyStoreKeys:
    """The encrypted key store (workers.key_store): records, their change counter and channel.

    ``record(name)`` is a hash: ``current`` (the sealed value as JSON: ciphertext, nonce, the
    master key's id, the slot, its last 4 characters), ``slot`` (the counter the seals use),
    ``set_at``, ``revoked_at``. ``previous(name)`` holds the value a rotation replaced, sealed
    the same way, until its grace period's TTL removes it.
    """

    namespace: str

    @property
    def base(self) -> str:
        return f"{self.namespace}:keystore"

    def record(self, name: str) -> str:
        return f"{self.base}:key:{name}"

    def previous(self, name: str) -> str:
        return f"{self.base}:key:{name}:previous"

    @property
    def names(self) -> str:
        """Set: every name the store has held (revoked ones keep their tombstone record)."""
        return f"{self.base}:names"

    @property
    def version(self) -> str:
        """String: a counter every change increments; workers compare it every second, so a
        change whose pub/sub message they missed reaches them anyway."""
        return f"{self.base}:version"

    @property
    def channel(self) -> str:
        """Pub/sub channel: every change publishes the new ``version``."""
        return f"{self.base}:changes"

    @property
    def ack_prefix(self) -> str:
        return f"{self.base}:ack:"

    def ack(self, process_id: str) -> str:
        """String (a few seconds' TTL, renewed each second): the ``version`` a worker process
        has applied; ``turnout keys`` waits for every live one to reach its change."""
        return f"{self.ack_prefix}{process_id}"

    @property
    def ack_pattern(self) -> str:
        return f"{self.ack_prefix}*"


@dataclass(frozen=True)
class KeyUsageKeys:
    """One API key's usage, by its id (``env:NAME`` or ``store:NAME@slot``, never its value),
    counted by record_outcome.lua with each call's record.

    ``totals`` is a hash: calls, prompt_tokens, completion_tokens, cost, err:<class>,
    last_used (Redis ms), last_error (the class of its last call, '' for a success), masked
    (``…`` and its last 4 characters).
    """

    totals: str

    @classmethod
    def under(cls, usage_prefix: str, key_id: str) -> KeyUsageKeys:
        return cls(f"{usage_prefix}{key_id}")

    @property
    def days(self) -> str:
        """Base of the per-UTC-day hashes (calls, errors; kept three days)."""
        return f"{self.totals}:d"

    def day(self, day: int) -> str:
        return bucket_key(self.days, day)


@dataclass(frozen=True)
class Keys:
    namespace: str = "turnout"

    @property
    def prefix(self) -> str:
        """kombu's ``global_keyprefix``: Celery's keys live under the namespace too."""
        return f"{self.namespace}:"

    @property
    def pattern(self) -> str:
        """SCAN pattern of every key of the namespace, Celery's included (what a test or a
        benchmark deletes when it is done)."""
        return f"{self.prefix}*"

    @property
    def job_pattern(self) -> str:
        """SCAN pattern of the job records (and their attempt logs)."""
        return f"{self.job_prefix}*"

    @property
    def route_pattern(self) -> str:
        """SCAN pattern of every route's breaker, limits and statistics."""
        return f"{self.route_prefix}*"

    @property
    def job_counts_pattern(self) -> str:
        """SCAN pattern of the per-day job count hashes (``job_counts_on``)."""
        return f"{self.job_counts}:*"

    def scratch(self, name: str) -> str:
        """A key for a tool's own bookkeeping (a benchmark's counter, a test's marker), under
        the namespace so that deleting the namespace deletes it too."""
        return f"{self.namespace}:scratch:{name}"

    @property
    def queue(self) -> str:
        """The Celery queue of run_job messages (stored as ``<prefix>jobs`` in Redis)."""
        return "jobs"

    @property
    def control_queue(self) -> str:
        """The Celery queue of beat's tasks (health checks, the reconciler), stored as
        ``<prefix>control``: its own queue so they never wait behind a backlog of jobs."""
        return "control"

    def bulk_queue(self, slot: int) -> str:
        """The Celery queue of the bulk lane's ``slot`` (routing.lanes), stored as
        ``<prefix>bulk-<slot>``: a batch sends all its jobs to one, workers take them in turn."""
        return f"bulk-{slot}"

    @property
    def bulk_turn(self) -> str:
        """Counter: bumped by each producer choosing a bulk queue, so producers starting at
        once, all seeing empty queues, take different ones (routing.lanes)."""
        return f"{self.namespace}:bulk_turn"

    def queue_list(self, queue: str) -> str:
        """List: the messages waiting in a Celery queue (``queue`` or ``control_queue``), as
        kombu stores them under ``prefix``."""
        return f"{self.prefix}{queue}"

    @property
    def unacked(self) -> str:
        """Hash: kombu's unacknowledged messages, delivery tag -> [message, exchange, routing
        key] (kombu's own name, under ``prefix``; routing.broker writes it atomically with the
        consumer's lists)."""
        return f"{self.prefix}unacked"

    @property
    def unacked_index(self) -> str:
        """Sorted set: kombu's delivery tags scored by when each was delivered (this machine's
        clock: kombu's visibility-timeout sweep reads it)."""
        return f"{self.prefix}unacked_index"

    @property
    def consumers(self) -> str:
        """Sorted set: the broker consumers (one per worker process) scored by their last beat,
        Redis ms; a consumer silent past routing.broker's CONSUMER_DEAD_AFTER_S is dead, and
        its messages are put back (reclaim_consumers.lua)."""
        return f"{self.namespace}:consumers"

    @property
    def consumer_prefix(self) -> str:
        """What each consumer's own keys start with: ``consumer_prefix`` + id + ``:popped:`` +
        the queue's list key, and ``consumer_prefix`` + id + ``:held`` (reclaim_consumers.lua
        spells both, from its KEYS)."""
        return f"{self.namespace}:consumer:"

    def consumer_popped(self, consumer_id: str, queue: str) -> str:
        """List: messages a consumer moved out of ``queue`` (BLMOVE, or fetch_message.lua) and
        has not yet written to ``unacked``: the window in which kombu's plain BRPOP lost them."""
        return f"{self.consumer_prefix}{consumer_id}:popped:{self.queue_list(queue)}"

    def consumer_held(self, consumer_id: str) -> str:
        """Set: the delivery tags in ``unacked`` that a consumer holds (taken off at ack)."""
        return f"{self.consumer_prefix}{consumer_id}:held"

    @property
    def job_prefix(self) -> str:
        """What every job hash starts with: reconcile_due.lua appends the ids it finds in
        ``due``."""
        return f"{self.namespace}:job:"

    def job(self, job_id: str) -> str:
        """Hash: the job record (state, request, policy, lease, outcome)."""
        return f"{self.job_prefix}{job_id}"

    def attempts(self, job_id: str) -> str:
        """List: the job's attempt log, one JSON object per provider call."""
        return f"{self.job(job_id)}:attempts"

    def idempotency(self, key: str) -> str:
        """String: the job id a producer's idempotency key maps to."""
        return f"{self.namespace}:idem:{key}"

    @property
    def due(self) -> str:
        """Sorted set: unfinished job ids, scored by when the reconciler should look at each."""
        return f"{self.namespace}:jobs:due"

    @property
    def job_counts(self) -> str:
        """Hash: jobs queued and running now. Also the base of the per-UTC-day hashes of jobs
        created, succeeded and failed (kept three days): see ``job_counts_on``."""
        return f"{self.namespace}:jobs:counts"

    def job_counts_on(self, day: int) -> str:
        """Hash: the jobs created, succeeded and failed on UTC day number ``day`` (Redis ms //
        DAY_MS: take it from routing.redis_clock, never from this machine's clock)."""
        return bucket_key(self.job_counts, day)

    @property
    def workers(self) -> str:
        """Sorted set: the workers alive lately, worker id scored by when each last announced
        itself (Redis ms); workers/presence.py writes it, turnout status reads it."""
        return f"{self.namespace}:workers"

    @property
    def worker_info(self) -> str:
        """Hash: worker id -> JSON of its hostname, pid and concurrency (beside ``workers``)."""
        return f"{self.namespace}:workers:info"

    @property
    def reconciler_counts(self) -> str:
        """Hash: how many messages the reconciler re-sent, by reason."""
        return f"{self.namespace}:reconciler"

    @property
    def route_prefix(self) -> str:
        """What every route key starts with: routers are given it, and ``RouteKeys.under``
        builds a route's keys from it."""
        return f"{self.namespace}:route:"

    @property
    def key_store(self) -> KeyStoreKeys:
        return KeyStoreKeys(self.namespace)

    @property
    def key_usage_prefix(self) -> str:
        """What every key's usage key starts with (``KeyUsageKeys.under``)."""
        return f"{self.namespace}:keyusage:"

    @property
    def key_usage_ids(self) -> str:
        """Set: the id of every key whose usage is counted (record_outcome.lua adds it)."""
        return f"{self.namespace}:keyusage-ids"

    def key_usage(self, key_id: str) -> KeyUsageKeys:
        return KeyUsageKeys.under(self.key_usage_prefix, key_id)

    def route(self, route_id: str) -> RouteKeys:
        """The keys of one route (its breaker, permits, statistics, health)."""
        return RouteKeys.under(self.route_prefix, route_id)

    def refused_parameters(self, provider: str, model: str) -> str:
        """Hash: parameter -> the refusal that taught it, for one model of one provider
        (``routing.request_fit.lesson_subject``): what the fleet learnt that model refuses.
        Expires ``TURNOUT_PARAMETER_LESSON_TTL`` after its last lesson, so a model that starts
        accepting a parameter again gets it back."""
        return f"{self.prefix}model:{provider}:{model}:refuses"

    def done_channel(self, job_id: str) -> str:
        """Pub/sub channel announcing that the job finished (payload: its state)."""
        return f"{self.namespace}:done:{job_id}"

    def job_id_from_channel(self, channel: str) -> str:
        return channel[len(f"{self.namespace}:done:") :]
