"""``turnout batch`` rides out a Redis restart: a private redis-server, SIGKILLed midway and
started again on its port with its append-only file, and the run finishes by itself."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ops.embedded_redis import redis_answers
from ops.simulator.server import LOOPBACK, free_port
from ops.stack import ChildProcess
from tests.integration.conftest import make_stack, tear_down
from tests.integration.test_batch import lines_in, read_jsonl, start_batch, write_lines


class RestartableRedis:
    """redis-server with an append-only file in ``directory``: what it acknowledged is there
    again after a SIGKILL and a start on the same port."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: ChildProcess | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        self.starts += 1
        argv = ["redis-server", "--bind", LOOPBACK, "--port", str(self.port), "--save", ""]
        argv += ["--appendonly", "yes", "--dir", str(self.directory)]
        self.process = ChildProcess(f"redis-{self.starts}", argv, log_dir=self.directory)
        self.process.wait_until(
            lambda: redis_answers(self.url, 0.2), timeout_s=15, what="PING answered"
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture
def private_redis(tmp_path):
    server = RestartableRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_a_redis_restart_midway_is_ridden_out_with_no_line_lost_or_written_twice(
    private_redis, tmp_path
):
    stack = make_stack(private_redis.url, tmp_path, worker=True)
    try:
        for sim in (stack.primary, stack.secondary):
            sim.set_faults(latency_ms=40)  # 8 worker threads: the run takes a few seconds
        source = write_lines(
            tmp_path / "in.jsonl",
            [
                {"custom_id": f"req-{n:03d}", "messages": [{"role": "user", "content": f"n{n}"}]}
                for n in range(200)
            ],
        )
        output = tmp_path / "out.jsonl"
        run = start_batch(
            stack, str(source), "-o", str(output), "--max-in-flight", "16",
            name="batch", log_dir=tmp_path,
        )  # fmt: skip
        try:
            run.wait_until(lambda: lines_in(output) >= 50, timeout_s=60, what="50 lines written")
            private_redis.kill()
            written_before_restart = lines_in(output)
            time.sleep(3)  # Redis away: submits and waits fail meanwhile
            private_redis.start()
            code = run.wait(timeout_s=120)
        finally:
            run.kill()
        log = run.log()
        assert code == 0, log
        assert written_before_restart < 200, "the restart came midway"
        assert "Redis unreachable" in log, "the run saw Redis go"
        lines = read_jsonl(output)
        assert len(lines) == 200, "no line lost, none written twice"
        assert sorted(line["custom_id"] for line in lines) == [f"req-{n:03d}" for n in range(200)]
        assert len({line["response"]["request_id"] for line in lines}) == 200, "one job a line"
        assert read_jsonl(tmp_path / "out.errors.jsonl") == []
    finally:
        tear_down(stack)
