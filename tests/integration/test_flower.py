"""Flower started for real on the stack's broker: it lists jobs as ``turnout.run_job``, shows a
running job's current call, a failed job as FAILURE and a job waiting on its routes as WAITING,
keeps beat's ticks out of its list, never shows a prompt, a completion or a key, and wants its
password.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ops.guarded_flower import EXIT_CONFIG
from ops.polling import poll_until
from ops.simulator.openai_sim import mask_key
from ops.simulator.server import LOOPBACK, free_port
from ops.stack import ChildProcess, flower_command
from producers.client import Client
from routing.celery_config import HEALTH_CHECK_TASK, RECONCILE_TASK, RUN_JOB_TASK
from routing.errors import ErrorClass
from routing.models import JobState
from tests.helpers import eventually
from tests.integration.harness import Beat, Sim, Worker, settings_for, stack_env, write_config

#: Long enough to see every job mid-call, short enough to keep the test quick.
SECONDARY_LATENCY_MS = 3000


class Flower:
    """``celery -A workers.app flower`` started as ``turnout up`` starts it (ops.stack)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.user, self.password = "ops", secrets.token_urlsafe(12)
        command = flower_command(port=self.port, user=self.user, password=self.password)
        self.process = ChildProcess(
            "flower", command.argv, env={**env, **command.env}, log_dir=log_dir
        )
        #: Every body Flower answered with, for the leak checks.
        self.seen: list[str] = []

    def request(
        self, path: str, *, auth: tuple[str, str] | None = None, host: str | None = None
    ) -> tuple[int, str]:
        user, password = auth or (self.user, self.password)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", **({"Host": host} if host else {})}
        request = urllib.request.Request(f"http://{LOOPBACK}:{self.port}{path}", headers=headers)
        return self._open(request)

    def anonymous(self, path: str) -> int:
        return self._open(urllib.request.Request(f"http://{LOOPBACK}:{self.port}{path}"))[0]

    def _open(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                body = response.read().decode(errors="replace")
                self.seen.append(body)
                return response.status, body
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def api(self, path: str) -> Any:
        status, body = self.request(path)
        assert status == 200, f"GET {path}: {status} {body[:200]}"
        return json.loads(body)

    def task(self, task_id: str) -> dict[str, Any] | None:
        status, body = self.request(f"/api/task/info/{task_id}")
        if status == 404:
            return None
        assert status == 200, f"task info {task_id}: {status} {body[:200]}"
        info: dict[str, Any] = json.loads(body)
        return info

    def answers(self) -> bool:
        try:
            return self.request("/healthcheck")[0] == 200  # it wants the password too
        except OSError:  # not listening yet
            return False

    def wait_ready(self, timeout_s: float = 20) -> None:
        self.process.wait_until(self.answers, timeout_s=timeout_s, what="answer", interval_s=0.1)

    def stop(self) -> None:
        self.process.stop()


def listening(flower: Flower, client: Client) -> None:
    """Flower answers HTTP before its event receiver is subscribed: a job it saw end proves
    it hears the worker."""

    def warm_up_seen() -> bool:
        handle = client.submit("warm up")
        handle.wait(timeout=15)
        return bool(
            poll_until(
                lambda: (flower.task(handle.job_id) or {}).get("state") == "SUCCESS", timeout_s=2
            )
        )

    eventually(warm_up_seen, what="Flower to receive task events", timeout=20)


def test_flower_shows_jobs_and_their_calls_but_no_prompt_completion_or_key(
    redis_url, namespace, tmp_path
):
    # Canaries are made here, never written down: the primary fails every call, so each job is
    # retried once there and then served by the slow secondary, its third call.
    primary_key = f"sk-canary-{secrets.token_hex(16)}"
    secondary_key = f"sk-canary-{secrets.token_hex(16)}"
    primary = Sim("primary", key=primary_key, fail_rate=1.0, fail_status=503)
    secondary = Sim("secondary", key=secondary_key)
    config = write_config(
        tmp_path / "turnout.yaml",
        [primary, secondary],
        breaker={"consecutive_failures": 100, "min_calls": 100},
    )
    env = stack_env(redis_url, namespace, config, [primary, secondary])
    token = f"flowertoken{secrets.token_hex(8)}"
    prompts = [f"Summarise {token} part {n}" for n in range(3)]

    flower = Flower(env, tmp_path)
    worker = Worker(env, tmp_path / "worker.log")
    client = Client(settings=settings_for(env))
    try:
        worker.start()
        flower.wait_ready()
        listening(flower, client)

        secondary.set_faults(latency_ms=SECONDARY_LATENCY_MS)
        handles = [client.submit(prompt) for prompt in prompts]
        ids = [handle.job_id for handle in handles]

        # Mid-call, each job shows the custom state, the deployment it is calling and which call.
        calling: dict[str, dict[str, Any]] = {}

        def all_calling() -> bool:
            for job_id in ids:
                info = flower.task(job_id)
                if info and info["state"] == "CALLING" and "secondary" in info["result"]:
                    calling[job_id] = info
            return len(calling) == len(ids)

        eventually(all_calling, what="every job to show the CALLING state", timeout=10)
        for info in calling.values():
            assert info["name"] == RUN_JOB_TASK
            assert info["result"] == "calling secondary: attempt 3, run 1"
        # What the worker runs, as Flower inspects it (the task lists come with a worker's name).
        hostname = calling[ids[0]]["worker"]
        inspected = eventually(
            lambda: flower.api(f"/api/workers?refresh=1&workername={hostname}").get(hostname),
            what="Flower to inspect the worker",
            timeout=SECONDARY_LATENCY_MS / 1000,
        )
        assert {task["id"] for task in inspected["active"]} & set(ids), "inspected mid-call"
        flower.request(f"/task/{ids[0]}")  # the page a person sees

        results = [handle.wait(timeout=15) for handle in handles]
        assert [r.state for r in results] == [JobState.SUCCEEDED] * 3
        assert {r.deployment for r in results} == {"secondary"}

        def all_succeeded() -> list[dict[str, Any]] | None:
            infos = [flower.task(job_id) or {} for job_id in ids]
            return infos if all(i.get("state") == "SUCCESS" for i in infos) else None

        for info in eventually(all_succeeded, what="Flower to see every job succeed", timeout=5):
            assert info["name"] == RUN_JOB_TASK
            assert "'state': 'succeeded'" in info["result"], "the job's small summary"
            assert info["args"] == repr(info["uuid"]), "the message carries the job id only"
        listed = flower.api(f"/api/tasks?taskname={RUN_JOB_TASK}")
        assert set(ids) <= set(listed)
        assert {listed[job_id]["name"] for job_id in ids} == {RUN_JOB_TASK}
        assert hostname in flower.api("/api/workers?refresh=1")
        flower.request(f"/task/{ids[0]}")

        assert flower.anonymous("/api/tasks") == 401
        assert flower.anonymous(f"/api/task/info/{ids[0]}") == 401
        assert flower.anonymous("/api/workers") == 401
        assert flower.request("/api/tasks", auth=(flower.user, "wrong"))[0] == 401
        # Its metrics and health check want the password too; Prometheus sends it.
        assert flower.anonymous("/metrics") == 401
        assert flower.anonymous("/healthcheck") == 401
        assert flower.request("/metrics", auth=(flower.user, "wrong"))[0] == 401
        status, metrics = flower.request("/metrics")
        assert status == 200
        assert "flower_events_total" in metrics
        # A DNS-rebinding page names its own host: refused, even with the right password.
        for path in ("/api/workers", "/metrics", "/"):
            assert flower.request(path, host=f"rebound.example:{flower.port}")[0] == 421, path
        assert flower.request("/api/workers", host=f"localhost:{flower.port}")[0] == 200
    finally:
        client.close()
        flower.stop()
        worker.stop()
        primary.stop()
        secondary.stop()

    completions = [r.text or "" for r in results]
    assert all(token in text for text in completions), "the simulator echoes the prompt"
    # The completion without the prompt it echoes: "secondary (sim-model) answers 1a2b3c4d".
    answers = [text.split(":", 1)[0] for text in completions]
    secrets_ = [primary_key, secondary_key, mask_key(primary_key), mask_key(secondary_key)]
    everything = "\n".join(flower.seen)
    assert all(job_id in everything for job_id in ids), "the answers checked are about the jobs"
    for needle in [token, *prompts, *completions, *answers, *secrets_]:
        assert needle not in everything, f"{needle[:16]}... appeared in Flower's answers"


def test_flower_counts_a_failed_job_as_failure_shows_a_waiting_one_and_no_beat_tick(
    redis_url, namespace, tmp_path
):
    # Past the 2 s a worker waits in place, so the job is rescheduled; inside its deadline (8 s).
    cooldown = 4.0
    sim = Sim("only", key=f"sim-{secrets.token_hex(8)}")
    config = write_config(
        tmp_path / "turnout.yaml",
        [sim],
        breaker={"consecutive_failures": 1, "cooldown_s": cooldown, "cooldown_jitter": 0.0},
        health={"every_s": 60},  # beat ticks often; it checks the route once, at the start
    )
    env = stack_env(
        redis_url,
        namespace,
        config,
        [sim],
        TURNOUT_HEALTH_TICK="0.5",
        TURNOUT_RECONCILE_EVERY="1",
    )
    token = f"flowertoken{secrets.token_hex(8)}"
    flower = Flower(env, tmp_path)
    worker = Worker(env, tmp_path / "worker.log")
    beat = Beat(env, tmp_path)
    client = Client(settings=settings_for(env))

    def state_of(job_id: str, state: str) -> dict[str, Any] | None:
        info = flower.task(job_id)
        return info if info and info["state"] == state else None

    try:
        worker.start()
        beat.start()
        flower.wait_ready()
        listening(flower, client)

        succeeding = client.submit(f"Succeed {token}")
        assert succeeding.wait(timeout=15).state is JobState.SUCCEEDED
        eventually(lambda: state_of(succeeding.job_id, "SUCCESS"), what="SUCCESS", timeout=5)

        sim.set_faults(fail_rate=1.0, fail_status=400)
        failing = client.submit(f"Fail {token}")
        failed = failing.wait(timeout=15)
        assert failed.state is JobState.FAILED
        assert failed.error is not None
        assert failed.error.error_class is ErrorClass.BAD_REQUEST
        info = eventually(lambda: state_of(failing.job_id, "FAILURE"), what="FAILURE", timeout=5)
        assert info["name"] == RUN_JOB_TASK
        raised = f"JobFailedError({failing.job_id!r}, 'bad_request')"
        assert info["exception"] == raised
        assert info["result"] == f"job {failing.job_id} failed: bad_request", "not 'calling ...'"
        assert not info["traceback"], "an expected end, not a crash"
        assert failing.job_id in flower.api("/api/tasks?state=FAILURE"), "Flower's Failed filter"

        sim.set_faults(fail_rate=1.0, fail_status=503)  # its first call opens the breaker
        waiting = client.submit(f"Wait {token}")
        info = eventually(lambda: state_of(waiting.job_id, "WAITING"), what="WAITING", timeout=10)
        assert info["result"].startswith("waiting for only until "), info["result"]
        sim.set_faults(fail_rate=0.0)
        assert waiting.wait(timeout=30).state is JobState.SUCCEEDED
        eventually(lambda: state_of(waiting.job_id, "SUCCESS"), what="SUCCESS", timeout=5)

        # Beat ticked all along (the worker ran its tasks), and none of it is in Flower's list.
        log = worker.log()
        assert f"Task {HEALTH_CHECK_TASK}[" in log
        assert f"Task {RECONCILE_TASK}[" in log
        listed = flower.api("/api/tasks")
        assert {task["name"] for task in listed.values()} == {RUN_JOB_TASK}
        assert {succeeding.job_id, failing.job_id, waiting.job_id} <= set(listed)
        assert flower.api("/api/task/types")["task-types"] == [RUN_JOB_TASK]
        assert f"raised expected: {raised}" in log
        assert "Traceback" not in log, "a failed job is logged in one line"
    finally:
        client.close()
        flower.stop()
        beat.stop()
        worker.stop()
        sim.stop()

    everything = "\n".join(flower.seen)
    assert token not in everything, "no prompt in Flower's answers"


def test_flower_refuses_to_start_with_env_examples_password(redis_url, namespace, tmp_path):
    """Past ``flower_command``'s own check (compose starts the launcher directly)."""
    sim = Sim("only", key=f"sim-{secrets.token_hex(8)}")
    try:
        env = stack_env(redis_url, namespace, write_config(tmp_path / "t.yaml", [sim]), [sim])
        command = flower_command(port=free_port(), user="ops", password=secrets.token_urlsafe(12))
        for credentials in ("admin:change-me", "ops:aaaaaaaaaaaaaaaaaaaa", ""):
            process = ChildProcess(
                "flower",
                command.argv,
                env={**env, "FLOWER_BASIC_AUTH": credentials},
                log_dir=tmp_path,
            )
            with process:
                assert process.wait(timeout_s=30) == EXIT_CONFIG, process.log_tail()
            log = process.log()
            assert "FLOWER_BASIC_AUTH" in log
            assert "secrets.token_urlsafe(32)" in log, "it says how to make one"
            assert "change-me" not in log
            (tmp_path / "flower.log").unlink()
        opened = ChildProcess(
            "flower",
            command.argv,
            env={**env, **command.env, "FLOWER_UNAUTHENTICATED_API": "true"},
            log_dir=tmp_path,
        )
        with opened:
            assert opened.wait(timeout_s=30) == EXIT_CONFIG, opened.log_tail()
        assert "FLOWER_UNAUTHENTICATED_API" in opened.log()
    finally:
        sim.stop()
