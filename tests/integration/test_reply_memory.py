"""A worker's memory stays bounded by its reply budget whatever providers send: 32 threads of
40 MiB replies, of gzip bombs, or of replies that fit one call but not all at once.

The transport runs in a child process (reply_burst.py) so its resident set is its own; the
server runs here. The documented ceiling (workers.reply_budget, TURNOUT_REPLY_BUDGET_MB) is
the baseline + the budget + CEILING_MARGIN_MB (in-flight socket chunks and decoder state, 32
threads); after the burst the process is back within AFTER_MARGIN_MB of its baseline.
Before the budget, the same 32 threads of 40 MiB replies peaked at 825 MB over a 31 MB
baseline, and the bombs at 782 MB and kept 172 MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from ops.simulator.server import ServerThread

BUDGET_MB = 256
THREADS = 32
CEILING_MARGIN_MB = 64
AFTER_MARGIN_MB = 32
MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


def _gzip_bomb(decoded_mb: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * MIB
    return b"".join(compressor.compress(block) for _ in range(decoded_mb)) + compressor.flush()


BODIES = {
    "/small": (b'{"ok": true}', []),
    "/huge": (b"x" * (40 * MIB), []),  # over the 32 MiB a call may receive
    "/bomb": (_gzip_bomb(1024), [(b"content-encoding", b"gzip")]),  # 1 GiB of zeros, ~1 MB
    "/fits": (b"y" * (12 * MIB), [(b"content-length", str(12 * MIB).encode())]),
}


async def replies(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, headers = BODIES[scope["path"]]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server():
    with ServerThread(replies) as running:
        yield running


def burst(server, path, *extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.integration.reply_burst", f"{server.url}{path}"]
    options = ["--threads", str(THREADS), "--budget-mb", str(BUDGET_MB), *extra]
    done = subprocess.run(
        [*command, *options],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=True,
    )
    report = json.loads(done.stdout)
    print(path, report)
    return report


def assert_bounded(report):
    ceiling = report["before_mb"] + BUDGET_MB + CEILING_MARGIN_MB
    assert report["peak_mb"] <= ceiling, report
    assert report["after_mb"] <= report["before_mb"] + AFTER_MARGIN_MB, "memory is given back"
    assert report["budget_in_use_after"] == 0, "every byte taken was given back"


@pytest.mark.parametrize("path", ["/huge", "/bomb"])
def test_oversized_replies_fail_typed_and_the_worker_stays_under_its_ceiling(server, path):
    report = burst(server, path)
    assert_bounded(report)
    outcomes = report["outcomes"]
    assert set(outcomes) <= {"ReplyBudgetExhausted", "InvalidResponse"}, outcomes
    assert outcomes.get("ReplyBudgetExhausted", 0) > 0, "the budget, not the per-call cap, held"
    assert sum(outcomes.values()) == THREADS


def test_replies_that_fit_one_call_but_not_all_at_once_are_served_until_the_budget_is_spent(
    server,
):
    report = burst(server, "/fits", "--hold")
    assert_bounded(report)
    outcomes = report["outcomes"]
    assert set(outcomes) <= {"ok", "ReplyBudgetExhausted"}, outcomes
    assert outcomes.get("ok", 0) >= BUDGET_MB // (2 * 12) - 1, "a 12 MiB reply needs 24 at most"
    assert outcomes["ok"] <= BUDGET_MB // 12, "held replies count until they are dropped"
    assert outcomes.get("ReplyBudgetExhausted", 0) > 0
    assert report["budget_in_use_at_end"] == outcomes["ok"] * 12 * MIB
