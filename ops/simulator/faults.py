"""Fault injection and bookkeeping shared by the provider simulators.

A simulator's faults can be changed while it runs (``POST /_sim/faults``), so a test or the demo
can break a provider and mend it without restarting anything.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class Faults:
    #: Added before every chat completion answer.
    latency_ms: float = 0.0
    #: Share of chat completions answered with ``fail_status`` (0.0 - 1.0).
    fail_rate: float = 0.0
    fail_status: int = 503
    #: Sent as ``retry-after`` (seconds) with failures, when set.
    retry_after_s: float | None = None
    #: Accept the request and never answer it.
    hang: bool = False
    #: Answer 200 with a body that is not a chat completion.
    malformed: bool = False
    #: Down, not just failing: every request, the credential probe included, gets
    #: ``fail_status`` (fail_rate leaves the probe alone, as an overloaded provider's models
    #: list usually still answers).
    down: bool = False
    #: Answer every chat request 401 with a plain-text page (a proxy's, not the provider's JSON)
    #: that echoes the credential the request carried, starting at this character offset: 480
    #: puts it across the 500-character cut of an error message, where the attack run found a
    #: key's head surviving redaction.
    echo_credential_at: int | None = None
    #: Groq only: the tier's tokens per minute, instead of on_demand's for the model; a request
    #: whose prompt and max_tokens exceed it is refused 413 (ops.simulator.quirks).
    tpm_limit: int | None = None
    #: The model's context window in tokens, for Bedrock's overflow answers (None: no limit):
    #: a window small enough to overflow in a test without a megabyte of prompt.
    context_window: int | None = None
    #: Share of structured-output replies (a JSON schema asked for) answered with text that is
    #: not JSON, as a model without strict decoding sometimes does (0.0 - 1.0).
    invalid_json_rate: float = 0.0

    def updated(self, changes: dict[str, Any]) -> Faults:
        allowed = {f.name for f in fields(self)}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        updated = replace(self, **changes)
        if not 0.0 <= updated.fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        if not 0.0 <= updated.invalid_json_rate <= 1.0:
            raise ValueError("invalid_json_rate must be between 0 and 1")
        if updated.echo_credential_at is not None and updated.echo_credential_at < 0:
            raise ValueError("echo_credential_at must be a character offset, 0 or more")
        if not 100 <= int(updated.fail_status) <= 599:
            raise ValueError("fail_status must be an HTTP status code")
        return updated


@dataclass
class Stats:
    """What the simulator saw: tests assert on it (e.g. "the secondary was never called")."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    chat_requests: int = 0
    #: Credential probes (models lists and the like): health checks land here.
    probe_requests: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    started_at: float = field(default_factory=time.time)
    #: The most recent chat requests: body and headers, never the Authorization value.
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))
    #: When each chat request arrived (epoch seconds), for rate and breaker timing checks.
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    #: Chat requests per credential, by its fingerprint (base.key_fingerprint), never the
    #: credential: {"calls", "first_at", "last_at"} (epoch seconds), for rotation checks.
    key_calls: dict[str, dict[str, float]] = field(default_factory=dict)

    def count_key(self, fingerprint: str, at: float) -> None:
        seen = self.key_calls.setdefault(fingerprint, {"calls": 0, "first_at": at, "last_at": at})
        seen["calls"] += 1
        seen["last_at"] = max(seen["last_at"], at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "chat_requests": self.chat_requests,
            "probe_requests": self.probe_requests,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "recent": list(self.recent),
            "arrivals": list(self.arrivals),
            "key_calls": {k: dict(v) for k, v in self.key_calls.items()},
        }


class FaultState:
    def __init__(self, faults: Faults, *, seed: int | None = None) -> None:
        self.initial = faults
        self.faults = faults
        self.stats = Stats()
        self._random = random.Random(seed)

    def should_fail(self) -> bool:
        rate = self.faults.fail_rate
        return rate >= 1.0 or (rate > 0.0 and self._random.random() < rate)

    def should_break_json(self) -> bool:
        rate = self.faults.invalid_json_rate
        return rate >= 1.0 or (rate > 0.0 and self._random.random() < rate)

    def reset(self) -> None:
        self.faults = self.initial
        self.stats = Stats()

    def snapshot(self) -> dict[str, Any]:
        return {"faults": asdict(self.faults), "stats": self.stats.as_dict()}
