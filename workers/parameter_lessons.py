"""What the fleet learnt its models refuse, kept in Redis so one refusal teaches every worker.

A model that answers 400 to a parameter (``UnsupportedParameter``) costs one call, fleet-wide:
the worker that met it writes the lesson (``Keys.refused_parameters``: parameter -> the refusal,
expiring ``TURNOUT_PARAMETER_LESSON_TTL`` after the last one), and every job after it fits its
request to the model without sending it (routing.request_fit).

Read before every call, so a short in-process cache (``CACHE_S``) keeps it off the hot path: a
lesson another worker learnt reaches this one within that time (and costs at most one more
refused call meanwhile). Redis being away costs nothing but the lesson: fitting then uses the
table alone and a refusal is retried without the parameter as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import redis

from routing.config import DeploymentConfig
from routing.keys import Keys
from routing.redis_text import as_text
from routing.request_fit import lesson_subject

log = logging.getLogger("turnout.worker")

#: Seconds a model's lessons read from Redis are reused by this process.
CACHE_S = 5.0


class RedisParameterLessons:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        ttl_s: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._keys = keys
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}

    def refused(self, deployment: DeploymentConfig) -> Mapping[str, str]:
        subject = lesson_subject(deployment)
        cached = self._cache.get(subject)
        now = self._clock()
        if cached is not None and now - cached[0] < CACHE_S:
            return cached[1]
        try:
            raw = self._client.hgetall(self._keys.refused_parameters(*subject))
        except redis.RedisError as exc:
            log.warning("parameter lessons unreadable (%s): fitting by the model table alone", exc)
            return cached[1] if cached else {}
        lessons = {as_text(k): as_text(v) for k, v in raw.items()}
        self._cache[subject] = (now, lessons)
        return lessons

    def learn(self, deployment: DeploymentConfig, parameter: str, message: str) -> None:
        subject = lesson_subject(deployment)
        key = self._keys.refused_parameters(*subject)
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(key, parameter, message)
            pipe.expire(key, self._ttl_s)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("parameter lesson not kept (%s): %s refuses %s", exc, subject, parameter)
        _, known = self._cache.get(subject, (0.0, {}))
        self._cache[subject] = (self._clock(), {**known, parameter: message})
