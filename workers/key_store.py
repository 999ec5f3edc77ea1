"""The encrypted key store in Redis: what ``turnout keys`` writes and workers read.

Only the holders of the master key come here: workers (to open the values their config names)
and the operator's ``turnout keys`` (which seals what it is handed on stdin). Producers,
``turnout serve`` and the exporter never import this module (an import-linter contract says so);
what they show of keys is metadata (routing.key_usage).

Every change is one script (write_key.lua): a compare-and-set on the record, the store's version
incremented and published on its channel, so a worker hears of it at once or, having missed the
message, at its next once-a-second look at the version (workers.key_follower). ``wait_for_workers``
is how the operator learns that every live worker process has applied a change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import redis

from routing.key_usage import stored_key_id
from routing.keys import Keys
from routing.redis_scripts import source
from routing.redis_text import as_text
from workers.key_crypto import Keyring, KeyStoreError, SealedValue

#: A name in the store: what ``store:NAME`` names in a config.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: How long a rotation keeps the previous value unless told (seconds).
DEFAULT_GRACE_S = 300.0
#: Writes retried when another writer changed the record between its read and its write.
CAS_TRIES = 5

KeyState = Literal["live", "absent", "revoked", "refused"]


@dataclass(frozen=True)
class StoredKey:
    """One name as a worker sees it: its value when it opens, or why there is none."""

    name: str
    state: KeyState
    value: str | None = field(default=None, repr=False)
    slot: int | None = None
    masked: str = ""
    #: why it cannot be used (state other than live)
    reason: str = ""
    #: the sealed value as stored: a worker compares it to see whether anything changed
    sealed: str = field(default="", repr=False)

    @property
    def key_id(self) -> str:
        return stored_key_id(self.name, self.slot) if self.slot is not None else ""


@dataclass(frozen=True)
class Reach:
    """How far a change has reached: worker processes that applied it, of those alive."""

    version: int
    confirmed: int
    alive: int
    elapsed_s: float

    @property
    def complete(self) -> bool:
        return self.confirmed >= self.alive


class KeyStore:
    def __init__(self, client: redis.Redis, keys: Keys, keyring: Keyring) -> None:
        self._client = client
        self._keys = keys
        self._store = keys.key_store
        self.keyring = keyring
        self._write = client.register_script(source("write_key"))

    # --- reading (workers) --------------------------------------------------------------------

    def version(self) -> int:
        return int(self._client.get(self._store.version) or 0)

    def load(self, names: list[str]) -> tuple[int, dict[str, StoredKey]]:
        """The store's version and each name's state, in one round trip; each value opened
        here. Fail closed: without a master key every name is refused, saying why."""
        with self._client.pipeline(transaction=True) as pipe:
            pipe.get(self._store.version)
            for name in names:
                pipe.hmget(self._store.record(name), "current", "revoked_at")
            version, *records = pipe.execute()
        found = {}
        for name, (current, revoked_at) in zip(names, records, strict=True):
            found[name] = self._state_of(
                name,
                as_text(current) if current is not None else None,
                revoked_at is not None,
            )
        return int(version or 0), found

    def _state_of(self, name: str, current: str | None, revoked: bool) -> StoredKey:
        if current is None:
            if revoked:
                return StoredKey(name, "revoked", reason=f"store:{name} was revoked")
            return StoredKey(
                name,
                "absent",
                reason=f"store:{name} has no value in the key store (turnout keys set {name})",
            )
        if self.keyring.current is None:
            return StoredKey(name, "refused", reason=f"store:{name}: {self.keyring.missing}")
        try:
            sealed = SealedValue.from_json(name, current)
            value = self.keyring.open(name, sealed)
        except KeyStoreError as exc:
            return StoredKey(name, "refused", reason=f"store:{name}: {exc}", sealed=current)
        return StoredKey(name, "live", value, sealed.slot, sealed.masked, sealed=current)

    # --- writing (turnout keys) ---------------------------------------------------------------

    def set(self, name: str, value: str) -> int:
        """Store a new name (or one revoked). Refused for a live one: rotate it instead."""
        return self._change("set", name, value, grace_s=0.0)

    def rotate(self, name: str, value: str, *, grace_s: float = DEFAULT_GRACE_S) -> int:
        """A new value for ``name``; the old one is kept, sealed, for ``grace_s``."""
        return self._change("rotate", name, value, grace_s=grace_s)

    def revoke(self, name: str) -> int:
        """The value and any previous one gone at once; a tombstone says it was revoked."""
        return self._change("revoke", name, None, grace_s=0.0)

    def rollback(self, name: str) -> int:
        """The previous value (within its grace) back as the current one."""
        return self._change("rollback", name, None, grace_s=0.0)

    def reencrypt(self) -> list[str]:
        """Seal every value again under the current master key (opening each with whichever
        key sealed it); the names resealed. A value that does not open stops it, untouched."""
        self.keyring.require()
        resealed = []
        for name in sorted(as_text(n) for n in self._client.smembers(self._store.names)):
            for _ in range(CAS_TRIES):
                current = self._client.hget(self._store.record(name), "current")
                previous = self._client.get(self._store.previous(name))
                current_text = as_text(current) if current is not None else ""
                previous_text = as_text(previous) if previous is not None else ""
                new_current = self._resealed(name, current_text)
                new_previous = self._resealed(name, previous_text)
                if new_current == current_text and new_previous == previous_text:
                    break
                status, _ = self._run(
                    "reseal", name, current_text, new_current, 0.0, 0, previous_text, new_previous
                )
                if status == "ok":
                    resealed.append(name)
                    break
            else:
                raise KeyStoreError(f"{name} kept changing while it was resealed; run it again")
        return resealed

    def _resealed(self, name: str, text: str) -> str:
        if not text:
            return ""
        sealed = SealedValue.from_json(name, text)
        value = self.keyring.open(name, sealed)  # every value checked, resealed or not
        if sealed.kid == self.keyring.require().key_id:
            return text
        return self.keyring.seal(name, sealed.slot, value).to_json()

    def _change(self, mode: str, name: str, value: str | None, *, grace_s: float) -> int:
        self.keyring.require()
        for _ in range(CAS_TRIES):
            record = {
                as_text(k): as_text(v)
                for k, v in self._client.hgetall(self._store.record(name)).items()
            }
            current = record.get("current", "")
            if current:
                self._check_master_key(name, current)
            slot = int(record.get("slot", 0)) + 1
            sealed = self.keyring.seal(name, slot, value).to_json() if value is not None else ""
            status, version = self._run(mode, name, current, sealed, grace_s, slot, "", "")
            if status == "ok":
                return version
            if status == "exists":
                raise KeyStoreError(
                    f"{name} already holds a value; rotate it (turnout keys rotate {name})"
                )
            if status == "absent":
                what = "no previous value within its grace" if mode == "rollback" else "no value"
                raise KeyStoreError(f"{name} has {what} in the key store")
        raise KeyStoreError(f"{name} kept changing while it was written; run it again")

    def _check_master_key(self, name: str, current: str) -> None:
        """Refuse to write beside a value this master key cannot open: a mistyped
        TURNOUT_ENCRYPTION_KEY would otherwise leave a store sealed under two keys."""
        sealed = SealedValue.from_json(name, current)
        self.keyring.open(name, sealed)

    def _run(
        self,
        mode: str,
        name: str,
        expected: str,
        sealed: str,
        grace_s: float,
        slot: int,
        expected_previous: str,
        sealed_previous: str,
    ) -> tuple[str, int]:
        reply = self._write(
            keys=[
                self._store.record(name),
                self._store.previous(name),
                self._store.names,
                self._store.version,
            ],
            args=[
                mode,
                expected,
                sealed,
                int(grace_s * 1000),
                name,
                self._store.channel,
                slot,
                expected_previous,
                sealed_previous,
            ],
        )
        return as_text(reply[0]), int(reply[1])

    # --- how far a change reached ---------------------------------------------------------------

    def reach(self, version: int) -> tuple[int, int]:
        """(processes that applied ``version`` or later, processes alive)."""
        acks = [as_text(k) for k in self._client.scan_iter(self._store.ack_pattern, count=500)]
        if not acks:
            return 0, 0
        applied = self._client.mget(acks)
        seen = [int(v) for v in applied if v is not None]
        return sum(1 for v in seen if v >= version), len(seen)

    def wait_for_workers(self, version: int, *, timeout_s: float) -> Reach:
        started = time.monotonic()
        while True:
            confirmed, alive = self.reach(version)
            elapsed = time.monotonic() - started
            if confirmed >= alive or elapsed >= timeout_s:
                return Reach(version, confirmed, alive, elapsed)
            time.sleep(0.01)
