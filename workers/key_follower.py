"""A worker process following the key store: a change reaches it without a restart.

One thread per worker process, on its own Redis connection: it listens on the store's channel
(a change arrives in milliseconds) and, once a second whatever it heard, compares the store's
version with the one it applied, so a message lost to a reconnect is caught up within a second.
Each look also renews this process's acknowledgement (the version it applied, with a TTL of a
few seconds), which is how ``turnout keys`` knows that every live process has applied a change.

Nothing of this runs on a job's path: a job reads the adapters and marks the last apply left
(workers.runtime), and a call already in flight keeps the adapter, and so the key, it started
with.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

import redis

from routing.keys import Keys
from workers.key_store import KeyStore, StoredKey

log = logging.getLogger("turnout.keys")

#: How often the version is compared (and the acknowledgement renewed), seconds.
CHECK_EVERY_S = 1.0
#: An acknowledgement not renewed for this long is a process gone.
ACK_TTL_S = 5

Apply = Callable[[int, dict[str, StoredKey]], None]


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class KeyFollower:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        store: KeyStore,
        names: list[str],
        apply: Apply,
        *,
        every_s: float = CHECK_EVERY_S,
    ) -> None:
        self._client = client
        self._store_keys = keys.key_store
        self._store = store
        self._names = sorted(set(names))
        self._apply = apply
        self._every_s = every_s
        self.process_id = process_id()
        self.applied_version = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> None:
        """Read every name now and apply it (raises redis.RedisError when Redis is away)."""
        version, found = self._store.load(self._names)
        self._apply(version, found)
        self.applied_version = version
        self._acknowledge()

    def start(self) -> KeyFollower:
        self._thread = threading.Thread(target=self._run, name="turnout-keys", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(redis.RedisError):  # else it expires by itself
            self._client.delete(self._store_keys.ack(self.process_id))
        self._client.close()

    def _acknowledge(self) -> None:
        self._client.set(self._store_keys.ack(self.process_id), self.applied_version, ex=ACK_TTL_S)

    def _run(self) -> None:
        pubsub: redis.client.PubSub | None = None
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                    pubsub.subscribe(self._store_keys.channel)
                heard = pubsub.get_message(timeout=self._every_s)
                if heard is not None or self._store.version() != self.applied_version:
                    self.load()
                else:
                    self._acknowledge()
            except redis.RedisError as exc:
                log.warning("key store: cannot follow changes (%s); trying again", exc)
                if pubsub is not None:
                    pubsub.close()
                    pubsub = None
                self._stop.wait(self._every_s)
            except Exception:
                log.exception("key store: a change could not be applied; trying again")
                self._stop.wait(self._every_s)
        if pubsub is not None:
            pubsub.close()
