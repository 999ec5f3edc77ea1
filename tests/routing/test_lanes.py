"""routing.lanes: the queues of each lane, the fetch order, and the bulk queue a batch takes
(on a real Redis)."""

from __future__ import annotations

import pytest
import redis

from routing.errors import ConfigError
from routing.keys import Keys
from routing.lanes import fetch_rank, lane_queue, parse_lanes, pick_bulk_queue, worker_queues
from routing.settings import CoreSettings

KEYS = Keys("t")
BULK = [f"bulk-{slot}" for slot in range(4)]


def settings(**values: object) -> CoreSettings:
    return CoreSettings.model_validate({"TURNOUT_BULK_QUEUES": 4, **values})


def test_lanes_parse_in_lane_order_and_refuse_unknown_names():
    assert parse_lanes("bulk, interactive") == ("interactive", "bulk")
    assert parse_lanes(["interactive"]) == ("interactive",)
    with pytest.raises(ConfigError, match="unknown lane"):
        parse_lanes("interactive,web")
    with pytest.raises(ConfigError):
        parse_lanes(" , ")


def test_a_worker_takes_control_then_interactive_then_bulk():
    assert worker_queues(KEYS, settings()) == ["jobs", "control", *BULK]
    assert worker_queues(KEYS, settings(), ("interactive",)) == ["jobs", "control"]
    assert worker_queues(KEYS, settings(), ("bulk",)) == ["control", *BULK]
    ranks = [fetch_rank(KEYS, queue) for queue in ["bulk-2", "control", "jobs", "bulk-0"]]
    assert ranks == [2, 0, 1, 2], "beat's ticks never wait behind a backlog"


def test_lanes_off_is_one_shared_queue():
    off = settings(TURNOUT_LANES="false")
    assert worker_queues(KEYS, off) == ["jobs", "control"]
    assert worker_queues(KEYS, off, ("bulk",)) == ["jobs", "control"], "a bulk worker still works"
    assert lane_queue(KEYS, off, "bulk", "bulk-3") == "jobs"
    assert lane_queue(KEYS, settings(), "bulk", "bulk-3") == "bulk-3"
    assert lane_queue(KEYS, settings(), "interactive", "bulk-3") == "jobs"


def test_batches_starting_together_take_different_bulk_queues(redis_url, namespace):
    keys = Keys(namespace)
    with redis.Redis.from_url(redis_url) as client:
        picked = [pick_bulk_queue(client, keys, settings()) for _ in range(4)]
        assert sorted(picked) == BULK, "every queue empty: the turn counter spreads them"


def test_a_new_batch_takes_the_shortest_bulk_queue(redis_url, namespace):
    keys = Keys(namespace)
    with redis.Redis.from_url(redis_url) as client:
        for slot, length in enumerate([5, 3, 0, 7]):
            for n in range(length):
                client.rpush(keys.queue_list(keys.bulk_queue(slot)), f"m{n}")
        assert {pick_bulk_queue(client, keys, settings()) for _ in range(3)} == {"bulk-2"}
        assert pick_bulk_queue(client, keys, settings(TURNOUT_LANES="0")) == "jobs"
