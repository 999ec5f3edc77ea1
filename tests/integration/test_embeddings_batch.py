"""A 1000-line embeddings batch through ``turnout batch`` (a subprocess), a real worker and two
simulated OpenAI providers over HTTP, the primary failing midway: every line gets the vector of
its own text, of the declared dimension, and no text was embedded twice (the simulators' counts
of answered calls add up to the lines)."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from ops.redis_namespace import delete_namespace
from ops.simulator.embeddings import vector_for
from ops.stack import ChildProcess
from tests.integration.harness import Sim, Worker, stack_env, write_config

LINES = 1000
#: Declared shorter than text-embedding-3-small's native 1536: the worker asks for it.
DIMENSIONS = 256
MODEL = "text-embedding-3-small"


@pytest.fixture
def embedding_stack(redis_url, tmp_path):
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    primary = Sim("primary", key=f"sim-primary-{uuid.uuid4().hex}")
    secondary = Sim("secondary", key=f"sim-secondary-{uuid.uuid4().hex}")
    declared = {"model": MODEL, "dimensions": DIMENSIONS}
    config = write_config(
        tmp_path / "turnout.yaml",
        [primary, secondary],
        policy={"retries_per_target": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.05},
        deployments={"primary": declared, "secondary": declared},
    )
    env = stack_env(redis_url, namespace, config, [primary, secondary])
    worker = Worker(env, tmp_path / "worker.log").start()
    yield env, primary, secondary
    worker.stop()
    primary.stop()
    secondary.stop()
    with redis.Redis.from_url(redis_url) as client:
        delete_namespace(client, namespace)


def answered(sim: Sim) -> int:
    return int(sim.stats()["statuses"].get("200", 0))


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_1000_line_embeddings_batch_fails_over_midway_and_embeds_nothing_twice(
    embedding_stack, tmp_path
):
    env, primary, secondary = embedding_stack
    texts = {f"doc-{n:04d}": f"document number {n} about topic {n % 37}" for n in range(LINES)}
    source = tmp_path / "in.jsonl"
    with source.open("w") as lines:
        for n, (cid, text) in enumerate(texts.items()):
            body: dict[str, Any] = {"model": "default", "input": text}
            line = (
                {"custom_id": cid, "method": "POST", "url": "/v1/embeddings", "body": body}
                if n % 2
                else {"custom_id": cid, **body}  # the plain shape: input, no messages
            )
            lines.write(json.dumps(line) + "\n")
    output = tmp_path / "out.jsonl"
    for sim in (primary, secondary):
        sim.set_faults(latency_ms=10)
    turnout = Path(sys.executable).parent / "turnout"
    argv = [str(turnout), "batch", str(source), "-o", str(output), "--max-in-flight", "32"]
    with ChildProcess("batch", argv, env=env, log_dir=tmp_path) as run:
        deadline = time.monotonic() + 240
        run.wait_until(
            lambda: lines_in(output) >= LINES // 3,
            timeout_s=deadline - time.monotonic(),
            what="a third of the lines written",
            interval_s=0.02,
        )
        primary.set_faults(fail_rate=1.0, fail_status=503, latency_ms=10)  # dies midway
        code = run.wait(timeout_s=deadline - time.monotonic())
        assert code == 0, run.log()

    written = [json.loads(line) for line in output.read_text().splitlines()]
    errors = tmp_path / "out.errors.jsonl"
    assert not errors.exists() or errors.read_text() == ""
    assert len(written) == LINES
    assert sorted(line["custom_id"] for line in written) == sorted(texts)
    served: Counter[str] = Counter()
    for line in written:
        body = line["response"]["body"]
        assert body["object"] == "list"
        (item,) = body["data"]
        vector = item["embedding"]
        assert len(vector) == DIMENSIONS
        expected = vector_for(texts[line["custom_id"]], MODEL, DIMENSIONS)
        assert max(abs(a - b) for a, b in zip(vector, expected, strict=True)) < 1e-6, (
            "each line carries the vector of its own text"
        )
        served[body["turnout"]["deployment"]] += 1
        assert body["usage"]["prompt_tokens"] > 0
        assert body["turnout"]["cost_usd"] > 0
    assert served["primary"] >= LINES // 3
    assert served["secondary"] > 0, "the failover"
    assert answered(primary) + answered(secondary) == LINES, "no text was embedded twice"
    failed_on_primary = [
        a
        for line in written
        for a in line["response"]["body"]["turnout"]["attempts"]
        if a["deployment"] == "primary" and a["outcome"] != "ok"
    ]
    assert failed_on_primary, "the attempt logs show the primary's failures"
    print(f"\nembeddings batch: served {dict(served)}; primary failures {len(failed_on_primary)}")
