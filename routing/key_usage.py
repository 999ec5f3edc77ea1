"""What the fleet knows about its API keys without holding any: the key store's records as
metadata (name, slot, last 4 characters, when set, the previous value's grace) and each key's
usage, as record_outcome.lua counts it (calls, tokens, cost, errors by class).

Read by ``turnout status``, ``turnout keys list`` and the exporter. Nothing here opens a sealed
value (that takes the master key, which only workers and ``turnout keys`` hold: workers.
key_crypto); a key is named by its id (``env:NAME``, ``store:NAME@slot``) and its mask.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis

from routing.keys import Keys
from routing.redis_text import as_text, decoded


def env_key_id(env_name: str) -> str:
    return f"env:{env_name}"


def stored_key_id(name: str, slot: int) -> str:
    return f"store:{name}@{slot}"


def masked(last4: str) -> str:
    return f"…{last4}" if last4 else "…"


@dataclass(frozen=True)
class StoredKeyInfo:
    """One name of the key store, as metadata."""

    name: str
    #: the live value's slot and mask (None: revoked, or never set)
    slot: int | None
    masked: str
    #: Redis ms
    set_at: int | None
    revoked_at: int | None
    #: which master key sealed the live value (routing never holds one: an id only)
    kid: str = ""
    #: a rotation's previous value, kept until ``previous_until`` (Redis ms)
    previous_slot: int | None = None
    previous_masked: str = ""
    previous_until: int | None = None

    @property
    def key_id(self) -> str | None:
        return stored_key_id(self.name, self.slot) if self.slot is not None else None

    @property
    def previous_key_id(self) -> str | None:
        return (
            stored_key_id(self.name, self.previous_slot) if self.previous_slot is not None else None
        )


@dataclass(frozen=True)
class KeyUsage:
    key_id: str
    masked: str
    calls: int = 0
    calls_today: int = 0
    errors_today: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    #: error class -> calls that failed so
    errors: dict[str, int] = field(default_factory=dict)
    #: Redis ms
    last_used: int | None = None
    last_error: str = ""

    @property
    def auth_failing(self) -> bool:
        """Its last call was refused as ``auth``: the provider no longer takes this key."""
        return self.last_error == "auth"

    @property
    def source(self) -> str:
        return "store" if self.key_id.startswith("store:") else "environment"


def _sealed_fields(text: str | None) -> tuple[int | None, str, str]:
    """slot, last 4 and master key id of a sealed value's JSON, without opening it."""
    if not text:
        return None, "", ""
    try:
        sealed = json.loads(text)
        return int(sealed["slot"]), str(sealed.get("last4", "")), str(sealed.get("kid", ""))
    except (ValueError, KeyError, TypeError):
        return None, "", ""


def read_key_store(client: redis.Redis, keys: Keys) -> list[StoredKeyInfo]:
    """Every name of the key store, sorted, in two round trips."""
    store = keys.key_store
    names = sorted(as_text(n) for n in client.smembers(store.names))
    if not names:
        return []
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(store.record(name))
            pipe.get(store.previous(name))
            pipe.pttl(store.previous(name))
        pipe.time()
        *replies, (seconds, micros) = pipe.execute()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    infos = []
    for index, name in enumerate(names):
        record = decoded(replies[3 * index])
        previous = replies[3 * index + 1]
        ttl = int(replies[3 * index + 2])
        slot, last4, kid = _sealed_fields(record.get("current"))
        previous_slot, previous_last4, _ = _sealed_fields(
            as_text(previous) if previous is not None else None
        )
        infos.append(
            StoredKeyInfo(
                name,
                slot,
                masked(last4) if slot is not None else "",
                int(record["set_at"]) if record.get("set_at") else None,
                int(record["revoked_at"]) if record.get("revoked_at") else None,
                kid,
                previous_slot,
                masked(previous_last4) if previous_slot is not None else "",
                now_ms + ttl if previous_slot is not None and ttl > 0 else None,
            )
        )
    return infos


def read_key_usage(client: redis.Redis, keys: Keys, day: int) -> list[KeyUsage]:
    """Every key whose calls were counted, by id, with today's (UTC ``day``) calls."""
    ids = sorted(as_text(i) for i in client.smembers(keys.key_usage_ids))
    if not ids:
        return []
    with client.pipeline(transaction=False) as pipe:
        for key_id in ids:
            usage = keys.key_usage(key_id)
            pipe.hgetall(usage.totals)
            pipe.hgetall(usage.day(day))
        replies = pipe.execute()
    found = []
    for index, key_id in enumerate(ids):
        totals, today = decoded(replies[2 * index]), decoded(replies[2 * index + 1])
        found.append(
            KeyUsage(
                key_id,
                totals.get("masked", "…"),
                calls=int(totals.get("calls", 0)),
                calls_today=int(today.get("calls", 0)),
                errors_today=int(today.get("errors", 0)),
                prompt_tokens=int(totals.get("prompt_tokens", 0)),
                completion_tokens=int(totals.get("completion_tokens", 0)),
                cost_usd=float(totals.get("cost", 0.0)),
                errors={
                    k.removeprefix("err:"): int(v)
                    for k, v in totals.items()
                    if k.startswith("err:")
                },
                last_used=int(totals["last_used"]) if totals.get("last_used") else None,
                last_error=totals.get("last_error", ""),
            )
        )
    return found
