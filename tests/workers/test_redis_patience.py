"""workers.redis_patience: a job store call tried again through Redis errors, with backoff,
until the patience is spent; nothing else is retried."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from workers.redis_patience import MAX_WAIT_S, backoff_s, patiently


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def failing(times: int, error: Exception) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "done"

    return calls, call


def test_a_first_success_is_returned_without_a_wait():
    clock = Clock()
    assert patiently(lambda: "done", patience_s=30, clock=clock, sleep=clock.sleep) == "done"
    assert clock.slept == []


def test_redis_errors_are_ridden_out_with_growing_waits():
    clock = Clock()
    calls, call = failing(3, redis.ConnectionError("refused"))
    assert patiently(call, patience_s=30, clock=clock, sleep=clock.sleep) == "done"
    assert len(calls) == 4
    first, second, third = clock.slept
    assert 0.2 <= first <= 1.2
    assert 0.4 <= second <= 1.4
    assert 0.8 <= third <= 1.8


def test_the_last_redis_error_is_raised_once_the_patience_is_spent():
    clock = Clock()
    _, call = failing(1000, redis.TimeoutError("slow"))
    with pytest.raises(redis.TimeoutError):
        patiently(call, patience_s=30, clock=clock, sleep=clock.sleep)
    assert 30 <= clock.now <= 30 + MAX_WAIT_S
    assert max(clock.slept) <= MAX_WAIT_S


def test_other_errors_are_raised_at_once():
    clock = Clock()
    calls, call = failing(1, ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        patiently(call, patience_s=30, clock=clock, sleep=clock.sleep)
    assert len(calls) == 1
    assert clock.slept == []


def test_the_backoff_is_tenacitys_exponential_jitter():
    for failures in range(1, 10):
        wait = backoff_s(failures)
        base = 0.2 * 2 ** (failures - 1)
        assert min(base, MAX_WAIT_S) <= wait <= min(base + 1.0, MAX_WAIT_S)
