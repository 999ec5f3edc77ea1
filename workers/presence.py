"""A worker's presence in Redis: who is online, for ``turnout status`` and the exporter.

Each Celery worker (its main process: one per ``celery worker``, whatever its pool) announces
its id, hostname, pid and concurrency every ANNOUNCE_EVERY_S from a thread of its own, by
Redis's clock (announce_worker.lua), and takes itself off on a clean shutdown. A worker that
died stops announcing: readers count only those seen within SEEN_WITHIN_S (three announcements
missed), and the next announcement of any worker forgets those silent for FORGET_AFTER_S.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from typing import Any

import redis
from celery import signals

from routing.keys import Keys
from routing.redis_scripts import source

log = logging.getLogger("turnout.presence")

ANNOUNCE_EVERY_S = 10.0
SEEN_WITHIN_S = 3 * ANNOUNCE_EVERY_S + 5
FORGET_AFTER_S = 3600.0


class WorkerPresence:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        worker_id: str,
        concurrency: int | None,
        every_s: float = ANNOUNCE_EVERY_S,
    ) -> None:
        self._client = client
        self._keys = keys
        self.worker_id = worker_id
        self._info = json.dumps(
            {"hostname": socket.gethostname(), "pid": os.getpid(), "concurrency": concurrency}
        )
        self._every_s = every_s
        self._announce = client.register_script(source("announce_worker"))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def announce(self) -> None:
        self._announce(
            keys=[self._keys.workers, self._keys.worker_info],
            args=[self.worker_id, self._info, int(FORGET_AFTER_S * 1000)],
        )

    def retire(self) -> None:
        """Off the list now (a clean shutdown), rather than SEEN_WITHIN_S later."""
        with self._client.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys.workers, self.worker_id)
            pipe.hdel(self._keys.worker_info, self.worker_id)
            pipe.execute()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="turnout-presence", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop announcing and retire (a Redis error is logged: the entry then just ages out)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.retire()
        except redis.RedisError as exc:
            log.warning("could not take worker %s off the list: %s", self.worker_id, exc)

    def _run(self) -> None:
        while True:
            try:
                self.announce()
            except redis.RedisError as exc:
                log.warning("could not announce worker %s: %s", self.worker_id, exc)
            if self._stop.wait(self._every_s):
                return


class _Current:
    presence: WorkerPresence | None = None


def _start_announcing(sender: Any = None, **_: Any) -> None:
    from workers.settings import WorkerSettings

    settings = WorkerSettings()
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    controller = getattr(sender, "controller", None)
    presence = WorkerPresence(
        client,
        Keys(settings.namespace),
        worker_id=f"{getattr(sender, 'hostname', socket.gethostname())}:{os.getpid()}",
        concurrency=getattr(controller, "concurrency", None),
    )
    presence.start()
    _Current.presence = presence


def _stop_announcing(**_: Any) -> None:
    if _Current.presence is not None:
        _Current.presence.stop()
        _Current.presence = None


# Connected when Celery imports this module (workers.app includes it), in a worker only.
signals.worker_ready.connect(_start_announcing, weak=False)
signals.worker_shutdown.connect(_stop_announcing, weak=False)
