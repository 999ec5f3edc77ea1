"""What ``turnout batch`` reads and writes on disk, before any job: no Redis, no worker."""

import json
import os

import pytest

from producers.batch_files import BatchFiles, OutputLock
from producers.batch_plan import BatchInputError, errors_path, plan_batch
from producers.client import Client
from producers.settings import ProducerSettings
from routing.config import parse_config
from routing.models import CompletionResult, JobState

CONFIG = parse_config(
    {
        "deployments": [{"id": "primary", "provider": "openai", "model": "gpt-4o-mini"}],
        "policies": {"default": {"targets": ["primary"]}},
    }
)
LINE = {"custom_id": "a", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def client():
    # Nothing here talks to Redis: planning only validates against the config.
    made = Client(settings=ProducerSettings(REDIS_URL="redis://127.0.0.1:1/0"), config=CONFIG)
    yield made
    made.close()


def done_line(custom_id, job_id):
    return json.dumps({"custom_id": custom_id, "response": {"request_id": job_id}}) + "\n"


def test_a_line_cut_by_a_kill_is_cut_back_and_its_request_runs_again(tmp_path, client):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({**LINE, "custom_id": c}) + "\n" for c in "abc"))
    output = tmp_path / "out.jsonl"
    whole = done_line("a", "j1")
    cut = done_line("b", "j2")[:-1]  # all of it but its newline
    output.write_text(whole + cut)
    plan = plan_batch(client, source, output, policy=None, strict=False)
    assert [item.custom_id for item in plan.todo] == ["b", "c"]
    assert plan.succeeded_before == 1

    files = BatchFiles(output)
    assert output.read_text() == whole, "the cut line is gone before anything is appended"
    files.write("b", CompletionResult(job_id="j2", state=JobState.SUCCEEDED, text="ok"))
    files.close()
    lines = output.read_text().splitlines()
    assert [json.loads(line)["custom_id"] for line in lines] == ["a", "b"]
    assert errors_path(output).read_text() == ""


def test_a_tail_longer_than_one_read_is_cut_back_too(tmp_path):
    output = tmp_path / "out.jsonl"
    whole = done_line("a", "j1")
    output.write_text(whole + "x" * 200_000)
    BatchFiles(output).close()
    assert output.read_text() == whole
    output.write_text("y" * 70_000)
    BatchFiles(output).close()
    assert output.read_text() == ""


def test_bytes_that_are_not_utf8_and_a_bom_are_reported_per_line(tmp_path, client):
    source = tmp_path / "in.jsonl"
    bad = json.dumps({**LINE, "custom_id": "b"}).encode().replace(b"Hi", b"H\xff")
    source.write_bytes(b"\xef\xbb\xbf" + json.dumps(LINE).encode() + b"\n" + bad + b"\n")
    plan = plan_batch(client, source, tmp_path / "out.jsonl", policy=None, strict=False)
    assert [item.custom_id for item in plan.todo] == ["a"], "the BOM is not part of line 1"
    at = bad.index(b"\xff") + 1
    assert [str(p) for p in plan.problems] == [f"line 2: not UTF-8 (byte {at})"]


def test_the_output_may_not_be_the_input(tmp_path, client):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(LINE) + "\n")
    with pytest.raises(BatchInputError, match="would overwrite the input"):
        plan_batch(client, source, source, policy=None, strict=False)


def test_one_run_per_output_at_a_time(tmp_path):
    output = tmp_path / "out.jsonl"
    with (
        OutputLock(output),
        pytest.raises(BatchInputError, match="another turnout batch"),
        OutputLock(output),
    ):
        pass
    assert not (tmp_path / "out.jsonl.lock").exists(), "removed by its holder"
    with OutputLock(output):
        assert os.path.exists(tmp_path / "out.jsonl.lock")
