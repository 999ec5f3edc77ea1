"""``turnout batch`` run for real: a subprocess, a real worker, simulators over HTTP."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ops.stack import ChildProcess
from tests.integration.conftest import Stack, make_stack, run_cli, tear_down

FAST_RETRIES: dict[str, Any] = {
    "retries_per_target": 1,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
}


@pytest.fixture
def fresh(redis_url, tmp_path):
    stack = make_stack(redis_url, tmp_path, worker=True, **FAST_RETRIES)
    yield stack
    tear_down(stack)


@pytest.fixture
def fresh_on_broker(broker, redis_url, tmp_path):
    """``fresh``, once per broker (a delivery test)."""
    stack = make_stack(redis_url, tmp_path, worker=True, broker=broker, **FAST_RETRIES)
    yield stack
    tear_down(stack)


def write_lines(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


def openai_line(custom_id: str, prompt: str, model: str = "default") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": prompt}]},
    }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def start_batch(stack: Stack, *args: str, name: str, log_dir: Path) -> ChildProcess:
    turnout = Path(sys.executable).parent / "turnout"
    return ChildProcess(name, [str(turnout), "batch", *args], env=stack.env, log_dir=log_dir)


def ok_chat_answers(stack: Stack) -> int:
    return sum(
        int(sim.stats()["statuses"].get("200", 0)) for sim in (stack.primary, stack.secondary)
    )


def test_a_killed_batch_run_again_writes_every_line_once_and_runs_no_job_twice(
    fresh_on_broker, tmp_path
):
    fresh = fresh_on_broker
    prompts = {f"req-{n:03d}": f"Summarise document {n}" for n in range(500)}
    # Half in OpenAI's Batch format, half plain lines.
    source = write_lines(
        tmp_path / "in.jsonl",
        [
            openai_line(cid, prompt)
            if n % 2
            else {"custom_id": cid, "messages": [{"role": "user", "content": prompt}]}
            for n, (cid, prompt) in enumerate(prompts.items())
        ],
    )
    output = tmp_path / "out.jsonl"
    for sim in (fresh.primary, fresh.secondary):
        sim.set_faults(latency_ms=40)  # 8 worker threads: the run takes a few seconds

    first = start_batch(
        fresh,
        str(source),
        "-o",
        str(output),
        "--max-in-flight",
        "16",
        name="run1",
        log_dir=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        first.wait_until(
            lambda: lines_in(output) >= 100,
            timeout_s=deadline - time.monotonic(),
            what="100 lines written",
            interval_s=0.02,
        )
        fresh.primary.set_faults(fail_rate=1.0, fail_status=503, latency_ms=40)  # dies midway
        first.wait_until(
            lambda: lines_in(output) >= 250,
            timeout_s=deadline - time.monotonic(),
            what="250 lines written after the failover",
            interval_s=0.02,
        )
    finally:
        first.kill()
    written_by_first = lines_in(output)
    assert written_by_first < 500, "killed halfway"

    second = run_cli(
        ["batch", str(source), "-o", str(output), "--max-in-flight", "16"], fresh.env, timeout=120
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{written_by_first} done before (0 of them failed)" in second.stdout

    lines = read_jsonl(output)
    assert len(lines) == 500
    assert sorted(line["custom_id"] for line in lines) == sorted(prompts)
    assert read_jsonl(tmp_path / "out.errors.jsonl") == []
    for line in lines:
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "chat.completion"
        assert prompts[line["custom_id"]] in body["choices"][0]["message"]["content"], (
            "each line carries the answer to its own request"
        )
        assert body["turnout"]["runs"] == 1
    served = Counter(line["response"]["body"]["turnout"]["deployment"] for line in lines)
    assert served["primary"] >= 100
    assert served["secondary"] > 0, "the failover"
    assert {line["response"]["body"]["model"] for line in lines} == {"sim-model"}
    assert len({line["response"]["request_id"] for line in lines}) == 500, "500 jobs"
    assert ok_chat_answers(fresh) == 500, "no job was answered twice"
    print(
        f"\nbatch: first run wrote {written_by_first} lines before SIGKILL; served {dict(served)}"
    )


def test_bad_input_is_reported_before_anything_is_enqueued(fresh, tmp_path):
    good = {"custom_id": "a", "messages": [{"role": "user", "content": "Hi"}]}
    duplicated = write_lines(tmp_path / "dup.jsonl", [good, {**good, "custom_id": "b"}, good])
    output = tmp_path / "out.jsonl"
    shown = run_cli(["batch", str(duplicated), "-o", str(output)], fresh.env)
    assert shown.returncode == 2
    assert "duplicate custom_id: 'a' on lines 1, 3" in shown.stderr
    assert not output.exists()
    assert fresh.queue_length() == 0
    assert fresh.primary.chat_requests() == 0

    invalid = write_lines(
        tmp_path / "invalid.jsonl",
        [good, "{oops", {"custom_id": "c", "messages": []}, {**good, "custom_id": "d"}],
    )
    strict = run_cli(["batch", str(invalid), "-o", str(output), "--strict"], fresh.env)
    assert strict.returncode == 2
    assert "line 2: not JSON" in strict.stderr
    assert not output.exists()
    assert fresh.queue_length() == 0

    lenient = run_cli(["batch", str(invalid), "-o", str(output)], fresh.env)
    assert lenient.returncode == 1, "invalid lines were skipped"
    assert "line 2: not JSON" in lenient.stderr
    assert "line 3 (custom_id 'c'): messages: List should have at least 1 item" in lenient.stderr
    assert sorted(line["custom_id"] for line in read_jsonl(output)) == ["a", "d"]


def test_json_python_cannot_decode_is_an_invalid_line_and_the_run_goes_on(fresh, tmp_path):
    good = {"custom_id": "a", "messages": [{"role": "user", "content": "Hi"}]}
    deep = '{"custom_id": "deep", "messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
    huge = '{"custom_id": "huge", "messages": [], "max_tokens": ' + "9" * 5000 + "}"
    source = write_lines(tmp_path / "in.jsonl", [good, deep, huge, {**good, "custom_id": "d"}])
    output = tmp_path / "out.jsonl"

    strict = run_cli(["batch", str(source), "-o", str(output), "--strict"], fresh.env)
    assert strict.returncode == 2, strict.stdout + strict.stderr
    assert "line 2: nested too deeply to read" in strict.stderr
    assert "Traceback" not in strict.stderr
    assert fresh.queue_length() == 0

    lenient = run_cli(["batch", str(source), "-o", str(output)], fresh.env)
    assert lenient.returncode == 1, lenient.stdout + lenient.stderr
    assert "Traceback" not in lenient.stderr
    assert "line 2: nested too deeply to read" in lenient.stderr
    assert "line 3: holds an integer of more than 4300 digits" in lenient.stderr
    assert "2 invalid" in lenient.stdout
    assert sorted(line["custom_id"] for line in read_jsonl(output)) == ["a", "d"]


def test_failed_lines_go_to_the_errors_file_with_their_class_and_attempts(fresh, tmp_path):
    fresh.primary.set_faults(fail_rate=1.0, fail_status=400)
    source = write_lines(
        tmp_path / "in.jsonl",
        [
            openai_line("to-primary", "Hello", model="primary"),
            openai_line("to-secondary", "Hello", model="secondary"),
        ],
    )
    output = tmp_path / "out.jsonl"
    shown = run_cli(["batch", str(source), "-o", str(output)], fresh.env)
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert "1 succeeded, 1 failed" in shown.stdout
    assert [line["custom_id"] for line in read_jsonl(output)] == ["to-secondary"]
    (failed,) = read_jsonl(tmp_path / "out.errors.jsonl")
    assert failed["custom_id"] == "to-primary"
    assert failed["error"]["code"] == "bad_request"
    assert failed["response"]["status_code"] == 400
    assert [(a["deployment"], a["outcome"]) for a in failed["attempts"]] == [
        ("primary", "bad_request")
    ]
    # attempts means what `turnout show --json` means by it, in both files: the attempt log.
    (served,) = read_jsonl(output)
    for line in (failed, served):
        shown_json = run_cli(["show", line["response"]["request_id"], "--json"], fresh.env)
        assert shown_json.returncode == 0, shown_json.stderr
        log = json.loads(shown_json.stdout)["attempts"]
        assert line["response"]["body"]["turnout"]["attempts"] == log
        assert line["response"]["body"]["turnout"]["calls"] == 1
    assert failed["attempts"] == failed["response"]["body"]["turnout"]["attempts"]

    again = run_cli(["batch", str(source), "-o", str(output)], fresh.env)
    assert again.returncode == 1, "nothing ran, and a line is still failed"
    assert "2 done before (1 of them failed)" in again.stdout
    assert fresh.primary.chat_requests() == 1

    fresh.primary.reset()
    retried = run_cli(["batch", str(source), "-o", str(output), "--retry-failed"], fresh.env)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "1 succeeded, 0 failed" in retried.stdout
    assert sorted(line["custom_id"] for line in read_jsonl(output)) == [
        "to-primary",
        "to-secondary",
    ]
    retry = next(line for line in read_jsonl(output) if line["custom_id"] == "to-primary")
    assert retry["response"]["request_id"] != failed["response"]["request_id"], "a new job"
    assert run_cli(["batch", str(source), "-o", str(output)], fresh.env).returncode == 0
