"""ops.bench cost's measuring parts against a private Redis: a drain's commands per job are what
its worker sent (the benchmark's own INFO and polls taken out), and the report puts each figure
beside the floor's with their ratio."""

import threading
import time
from contextlib import contextmanager

import pytest
import redis

from ops.bench.cost import Drain, RedisSnapshot, Variant, measure_drain, report
from ops.embedded_redis import EmbeddedRedis


def test_a_drain_counts_what_its_worker_sent_and_not_its_own_polls():
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        worker = redis.Redis.from_url(server.url)
        queue = "bench:queue"
        client.rpush(queue, *range(10))

        def work():
            worker.lpop(queue)  # the first message starts the clock (and is not counted)
            time.sleep(0.3)
            worker.incr("bench:done")
            for _ in range(9):  # what the worker does per job: two commands
                worker.lpop(queue)
                worker.incr("bench:done")

        @contextmanager
        def start():
            thread = threading.Thread(target=work)
            thread.start()
            yield 1  # PID 1: some process whose CPU /proc shows
            thread.join()

        drain = measure_drain(
            start, client, queue, 10, lambda: int(client.get("bench:done") or 0) >= 10, "get"
        )
        client.close()
        worker.close()
    assert drain.commands == {"lpop": 0.9, "incrby": 1.0}, "no GET, LLEN nor INFO of the bench"
    assert drain.commands_total == pytest.approx(1.9)
    assert drain.redis_cpu_ms >= 0


def test_a_snapshot_leaves_out_the_benchmarks_info():
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        first = RedisSnapshot.take(client)
        client.set("k", 1)
        second = RedisSnapshot.take(client)
        client.close()
    assert (second.calls - first.calls) == {"set": 1}


def test_the_report_gives_each_figure_its_ratio_to_the_floor():
    floor, turnout = Variant("floor"), Variant("turnout")
    floor.drains[200] = [Drain(300, 1.0, 0.2, {"evalsha": 0.0, "lmove": 2.0}, 6.7)]
    turnout.drains[200] = [Drain(150, 3.0, 0.6, {"evalsha": 3.0, "lmove": 2.0}, 13.3)]
    lines = list(report([turnout], floor, [200]))
    text = "\n".join(lines)
    assert "0.50x" in text  # jobs/s
    assert "3.00x" in text  # worker CPU and Redis CPU
    assert "2.50x" in text  # commands: 5 against 2
    evalsha = next(line for line in lines if line.startswith("evalsha"))
    assert evalsha.split()[1:] == ["0.00", "3.00"]
