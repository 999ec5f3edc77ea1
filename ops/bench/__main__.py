"""``python -m ops.bench overhead|throughput|routing|wasted|batch|serve|embeddings|keys-*``:
turnout against baselines from the same run.

overhead    submit-to-result time of one job at a time through the whole stack (producer, Redis,
            worker, simulator), beside a raw httpx call to the same 0 ms simulator.
throughput  N jobs queued, then drained by one worker process against a simulator that takes
            500 ms: jobs/s, calls in flight, worker CPU per job, peak RSS, beside the same worker
            configuration draining N Celery tasks that only sleep 500 ms (Celery's own floor).
routing     what the fleet breaker and rate limits add to one attempt, beside a Redis PING.
wasted      calls a fleet of workers sends to a provider that died, fleet breaker against
            per-process breakers with the same thresholds (ops/bench/fleet.py).
batch       turnout batch (a JSONL file in, results appended) against the bare asyncio client
            submitting the same jobs with the same in-flight window to the same worker.
serve       a chat completion through turnout serve over HTTP against the bare client's
            submit-and-wait, one at a time, same worker.
embeddings  submit-to-result time of one embeddings job at a time, beside a raw httpx call to
            the same 0 ms simulator's /v1/embeddings (ops/bench/embeddings.py).
keys-rotation  rotate and revoke a stored key under load on three workers: to the first call
            with the new key, to the last with the revoked one (ops/bench/key_rotation.py).
keys-cpu    worker CPU per job with the key from the environment and from the key store,
            alternated in the same run.
cost        jobs/s, worker CPU, Redis CPU and Redis commands per job of one worker process,
            beside Celery's floor, on a private Redis (ops/bench/cost.py).
lanes       submit-to-start of interactive jobs while a bulk batch runs: priority lanes against
            one shared queue (TURNOUT_LANES=false), same run (ops/bench/lanes.py).
lanes-window  jobs/s of a windowed producer (as turnout batch sends: a job as one finishes) in
            the bulk lane against the interactive lane, alternated, same worker.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import redis
import typer
import yaml

from ops.amqp_queues import delete_stack_queues, stack_queues
from ops.embedded_redis import EmbeddedRedis, redis_answers
from ops.redis_namespace import delete_namespace
from ops.simulator.server import LOOPBACK, free_port
from ops.stack import ChildProcess, worker_command
from routing.keys import Keys
from routing.models import JobState, Lane

FINISHED = (JobState.SUCCEEDED, JobState.FAILED)
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@dataclass
class Bench:
    redis_url: str
    namespace: str
    sim_url: str
    env: dict[str, str]
    workdir: Path

    def settings(self) -> Any:
        from workers.settings import WorkerSettings

        return WorkerSettings.model_validate(
            {k: v for k, v in self.env.items() if k.startswith(("TURNOUT_", "REDIS_URL"))}
        )

    def sim_state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.sim_url}/_sim/state", timeout=5) as response:  # noqa: S310
            state: dict[str, Any] = json.loads(response.read())
            return state


#: The brokers ``throughput --broker`` knows: Redis (REDIS_URL's), or RabbitMQ at AMQP_URL.
AMQP_URL = os.environ.get("TURNOUT_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
BROKER_URLS: dict[str, str | None] = {"redis": None, "rabbitmq": AMQP_URL}


@contextmanager
def bench_stack(
    latency_ms: float,
    *,
    concurrency: int,
    broker_url: str | None = None,
    redis_url: str | None = None,
) -> Iterator[Bench]:
    """Redis (``redis_url``, else the one at REDIS_URL, or embedded), one simulator process, a
    config; the messages on ``broker_url`` (TURNOUT_BROKER_URL) when given, else on that Redis."""
    workdir = Path(tempfile.mkdtemp(prefix="turnout-bench-"))
    url = redis_url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    embedded = None if redis_answers(url) else EmbeddedRedis().start()
    redis_url = embedded.url if embedded else url
    key = f"bench-{secrets.token_hex(12)}"
    port = free_port()
    sim = ChildProcess(
        "simulator",
        [
            sys.executable,
            "-m",
            "ops.simulator",
            "--port",
            str(port),
            "--name",
            "bench",
            "--latency-ms",
            str(latency_ms),
        ],
        env={**os.environ, "TURNOUT_SIM_API_KEY": key},
        log_dir=workdir,
    )
    namespace = f"bench-{secrets.token_hex(4)}"
    config = workdir / "turnout.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "deployments": [
                    {
                        "id": "bench",
                        "provider": "openai",
                        "model": "sim-model",
                        "base_url": f"http://{LOOPBACK}:{port}/v1",
                        "api_key_env": "BENCH_SIM_KEY",
                        # the simulated model answers tools and schemas (overhead --tools)
                        "capabilities": {"tools": True, "json_schema": True},
                    }
                ],
                "policies": {"default": {"targets": ["bench"], "deadline_s": 120}},
            }
        )
    )
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "TURNOUT_NAMESPACE": namespace,
        "TURNOUT_CONFIG": str(config),
        "TURNOUT_CONCURRENCY": str(concurrency),
        "BENCH_SIM_KEY": key,
    }
    env.pop("TURNOUT_BROKER_URL", None)
    if broker_url:
        env["TURNOUT_BROKER_URL"] = broker_url
    bench = Bench(redis_url, namespace, f"http://{LOOPBACK}:{port}", env, workdir)
    try:
        sim.wait_until(lambda: _answers(bench.sim_state), timeout_s=15, what="simulator state")
        yield bench
    finally:
        sim.stop()
        with redis.Redis.from_url(redis_url) as client:
            delete_namespace(client, namespace)
        if broker_url:
            delete_stack_queues(bench.settings())
        if embedded:
            embedded.stop()


@contextmanager
def worker(bench: Bench, app_module: str, concurrency: int) -> Iterator[ChildProcess]:
    command = worker_command(
        app=app_module, concurrency=concurrency, loglevel="warning", heartbeat=False
    )
    with ChildProcess(
        app_module, command, env=bench.env, log_dir=bench.workdir, grace_s=60
    ) as process:
        yield process


def _answers(ask: Callable[[], object]) -> bool:
    """True when ``ask`` returns, False while its server refuses connections."""
    try:
        ask()
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


#: A function tool for ``overhead --tools``: a request of the shape agents send.
BENCH_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}


@app.command()
def overhead(
    jobs: Annotated[int, typer.Option(help="Sequential jobs (and raw calls).")] = 300,
    tools: Annotated[
        bool, typer.Option(help="Each request offers a tool (the answer is a tool call).")
    ] = False,
) -> None:
    """Queue overhead: one job at a time, 0 ms provider, against a raw httpx call."""
    from producers.client import Client

    offered = {"tools": [BENCH_TOOL]} if tools else {}
    with bench_stack(0, concurrency=8) as bench:
        body = {"model": "sim-model", "messages": [{"role": "user", "content": "hi"}], **offered}
        headers = {"authorization": f"Bearer {bench.env['BENCH_SIM_KEY']}"}
        raw: list[float] = []
        with httpx.Client() as http:
            for _ in range(jobs + 20):
                started = time.perf_counter()
                http.post(f"{bench.sim_url}/v1/chat/completions", json=body, headers=headers).json()
                raw.append(time.perf_counter() - started)
        raw = raw[20:]
        through: list[float] = []
        with worker(bench, "workers.app", 8), Client(settings=bench.settings()) as client:
            client.complete("warm up", timeout=60)
            for n in range(jobs + 20):
                started = time.perf_counter()
                request = {"messages": [{"role": "user", "content": f"overhead {n}"}], **offered}
                client.complete(request, timeout=60)
                through.append(time.perf_counter() - started)
        through = through[20:]
    raw_ms = [s * 1000 for s in raw]
    job_ms = [s * 1000 for s in through]
    kind = "tools requests" if tools else "jobs"
    print(f"\nqueue overhead, {jobs} sequential {kind}, 0 ms simulator")
    print(f"{'':24}{'median ms':>12}{'p99 ms':>10}")
    print(f"{'raw httpx call':24}{statistics.median(raw_ms):12.2f}{pct(raw_ms, 0.99):10.2f}")
    print(
        f"{'turnout submit->result':24}{statistics.median(job_ms):12.2f}{pct(job_ms, 0.99):10.2f}"
    )
    ratio = statistics.median(job_ms) / statistics.median(raw_ms)
    print(
        f"ratio (median): {ratio:.1f}x a raw call; "
        f"overhead {statistics.median(job_ms) - statistics.median(raw_ms):.2f} ms per job"
    )


@app.command()
def embeddings(
    jobs: Annotated[int, typer.Option(help="Sequential jobs (and raw calls).")] = 300,
    texts: Annotated[int, typer.Option(help="Texts per job (and per raw call).")] = 1,
) -> None:
    """Embeddings-job overhead: one at a time, 0 ms provider, against a raw httpx call."""
    from ops.bench.embeddings import measure

    with bench_stack(0, concurrency=8) as bench, worker(bench, "workers.app", 8):
        measure(bench, jobs=jobs, texts=texts)


def drain(
    bench: Bench, app_module: str, concurrency: int, total: int, done: Callable[[], bool]
) -> dict[str, float]:
    """Start a worker on a full queue; time it from its first message until ``done()``."""
    with worker(bench, app_module, concurrency) as process, waiting_messages(bench) as waiting:
        while waiting() >= total:
            if not process.running():
                raise RuntimeError(f"worker exited: see {bench.workdir}")
            time.sleep(0.002)
        started, (user0, sys0) = time.perf_counter(), cpu_seconds(process.pid)
        while not done():
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        user1, sys1 = cpu_seconds(process.pid)
        rss = peak_rss_mb(process.pid)
    return {
        "jobs_s": total / elapsed,
        "cpu_ms": (user1 - user0 + sys1 - sys0) * 1000 / total,
        "sys_ms": (sys1 - sys0) * 1000 / total,
        "rss_mb": rss,
        "s": elapsed,
    }


@contextmanager
def waiting_messages(bench: Bench) -> Iterator[Callable[[], int]]:
    """A cheap reading of the messages waiting in the jobs queue, on either broker: Redis's
    LLEN, or a passive queue.declare on one RabbitMQ channel kept open meanwhile."""
    settings = bench.settings()
    keys = Keys(bench.namespace)
    if settings.broker_is_amqp:
        from kombu.connection import Connection

        jobs = stack_queues(settings)[0]
        with Connection(settings.broker_url) as connection:  # type: ignore[no-untyped-call]
            channel = connection.channel()
            yield lambda: int(channel.queue_declare(jobs, passive=True).message_count)
        return
    with redis.Redis.from_url(bench.redis_url) as client:
        queue = keys.queue_list(keys.queue)
        yield lambda: int(client.llen(queue))


@app.command()
def throughput(
    jobs: Annotated[int, typer.Option(help="Jobs queued before the worker starts.")] = 2000,
    latency_ms: Annotated[float, typer.Option(help="Simulated provider latency.")] = 500,
    concurrency: Annotated[int, typer.Option(help="Threads of the one worker process.")] = 400,
    floor: Annotated[bool, typer.Option(help="Also measure Celery's floor.")] = True,
    broker: Annotated[
        list[str] | None,
        typer.Option(
            help="redis (REDIS_URL, the default) or rabbitmq (TURNOUT_BENCH_AMQP_URL, default "
            "guest@127.0.0.1:5672); repeat it to measure each in the same run."
        ),
    ] = None,
) -> None:
    """One worker process draining N queued jobs against a slow provider, on each broker."""
    names = broker or ["redis"]
    unknown = [name for name in names if name not in BROKER_URLS]
    if unknown:
        raise typer.BadParameter(f"unknown broker {unknown[0]!r}; one of {', '.join(BROKER_URLS)}")
    for name in names:
        rows, states, peak = _throughput_rows(
            jobs, latency_ms, concurrency, floor=floor, broker_url=BROKER_URLS[name]
        )
        print(
            f"\n{name} broker: one worker process, threads -c {concurrency}, {jobs} jobs, "
            f"{latency_ms:g} ms provider"
        )
        print(f"{'':28}{'jobs/s':>9}{'CPU ms/job':>12}{'(kernel)':>10}{'peak RSS MB':>13}")
        for row_name, row in rows.items():
            print(
                f"{row_name:28}{row['jobs_s']:9.0f}{row['cpu_ms']:12.2f}{row['sys_ms']:10.2f}"
                f"{row['rss_mb']:13.0f}"
            )
        print(f"peak calls in flight at the provider: {peak}")
        print(f"turnout job states: {dict(states)}")
        if "celery floor (sleep task)" in rows:
            ratio = rows["turnout jobs"]["jobs_s"] / rows["celery floor (sleep task)"]["jobs_s"]
            print(f"turnout / celery floor: {ratio:.2f}")


def _throughput_rows(
    jobs: int, latency_ms: float, concurrency: int, *, floor: bool, broker_url: str | None
) -> tuple[dict[str, dict[str, float]], Counter[str], Any]:
    from ops.bench.floor_app import sleep
    from producers.client import Client
    from routing.celery_config import create_app

    rows: dict[str, dict[str, float]] = {}
    states: Counter[str] = Counter()
    with bench_stack(latency_ms, concurrency=concurrency, broker_url=broker_url) as bench:
        if floor:
            # A producer app of its own: the floor app's pools belong to the first broker.
            floor_app = create_app(bench.settings())
            counter = Keys(bench.namespace).scratch("slept")
            with floor_app.producer_or_acquire() as producer:
                for _ in range(jobs):
                    floor_app.send_task(sleep.name, (latency_ms / 1000, counter), producer=producer)
            with redis.Redis.from_url(bench.redis_url) as r:
                rows["celery floor (sleep task)"] = drain(
                    bench,
                    "ops.bench.floor_app",
                    concurrency,
                    jobs,
                    lambda: int(r.get(counter) or 0) >= jobs,
                )
        with Client(settings=bench.settings()) as client:
            handles = [client.submit(f"throughput {n}") for n in range(jobs)]

            def finished() -> bool:
                # Cheap while running (the last job queued); then every job, once.
                if client.store.state(handles[-1].job_id) not in FINISHED:
                    return False
                states.clear()
                states.update(str(client.store.state(h.job_id)) for h in handles)
                return states["succeeded"] + states["failed"] == jobs

            rows["turnout jobs"] = drain(bench, "workers.app", concurrency, jobs, finished)
        peak = bench.sim_state()["stats"]["peak_in_flight"]
    return rows, states, peak


@app.command()
def routing(
    attempts: Annotated[int, typer.Option(help="Attempts timed per router.")] = 5000,
) -> None:
    """Microseconds and Redis round trips routing adds per attempt."""
    from ops.bench.fleet import routing_cost

    row = routing_cost(attempts)
    print(f"\nrouting cost per attempt (acquire + record, 3 routes), median of {attempts}")
    print(f"{'Redis PING (baseline)':34}{row['ping_us']:8.0f} us")
    print(f"{'fleet router, first route closed':34}{row['fleet_us']:8.0f} us")
    print(f"{'fleet router, first route open':34}{row['fleet_past_open_us']:8.0f} us")
    print(f"{'per-process router (fallback)':34}{row['local_us']:8.0f} us")
    print(f"Redis round trips per attempt: {row['round_trips']:.2f}")
    print(f"fleet / PING: {row['fleet_us'] / row['ping_us']:.1f}x")


@app.command()
def wasted(
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 4,
    concurrency: Annotated[int, typer.Option(help="Threads per worker.")] = 8,
    rate: Annotated[float, typer.Option(help="Jobs submitted per second.")] = 40,
    after_s: Annotated[float, typer.Option(help="Seconds measured after the death.")] = 12,
    cooldown_s: Annotated[float, typer.Option(help="Breaker cool-down (default 30).")] = 30,
) -> None:
    """Calls sent to a dead provider: fleet breaker against per-process breakers."""
    from ops.bench.fleet import wasted_calls

    rows = {
        scope: wasted_calls(
            scope=scope,
            workers=workers,
            concurrency=concurrency,
            rate=rate,
            after_s=after_s,
            cooldown_s=cooldown_s,
        )
        for scope in ("fleet", "process")
    }
    print(
        f"\n{workers} workers x {concurrency} threads, {rate:g} jobs/s, the primary dies and stays "
        f"dead for {after_s:g}s; thresholds: 5 consecutive failures, cool-down {cooldown_s:g}s"
    )
    print(
        f"{'breaker':20}{'wasted':>8}{'trip':>6}{'probes':>8}{'stopped after':>15}{'jobs ok':>10}"
    )
    for scope, row in rows.items():
        name = "fleet (Redis)" if scope == "fleet" else "per-process"
        print(
            f"{name:20}{row['wasted']:8.0f}{row['trip']:6.0f}{row['probes']:8.0f}"
            f"{row['stopped_after_s']:14.2f}s{row['succeeded']:>6.0f}/{row['jobs']:.0f}"
        )
    if rows["fleet"]["wasted"]:
        print(f"per-process / fleet: {rows['process']['wasted'] / rows['fleet']['wasted']:.1f}x")


@app.command()
def batch(
    jobs: Annotated[int, typer.Option(help="Lines (and bare client jobs).")] = 2000,
    window: Annotated[int, typer.Option(help="Jobs in flight (--max-in-flight).")] = 64,
    latency_ms: Annotated[float, typer.Option(help="Simulated provider latency.")] = 50,
) -> None:
    """turnout batch against the bare asyncio client with the same window, same worker."""
    import asyncio
    import io

    from rich.console import Console

    from producers.batch import run_batch
    from producers.client import Client

    async def bare(client: Client) -> None:
        slots = asyncio.Semaphore(window)

        async def one(n: int) -> None:
            async with slots:
                await (await client.asubmit(f"bare {n}")).wait()

        await asyncio.gather(*(one(n) for n in range(jobs)))
        await client.aclose()

    with bench_stack(latency_ms, concurrency=window) as bench, worker(bench, "workers.app", window):
        lines = bench.workdir / "in.jsonl"
        lines.write_text(
            "".join(
                json.dumps(
                    {"custom_id": f"q{n}", "messages": [{"role": "user", "content": f"b {n}"}]}
                )
                + "\n"
                for n in range(jobs)
            )
        )
        with Client(settings=bench.settings()) as client:
            client.complete("warm up", timeout=60)
            started = time.perf_counter()
            asyncio.run(bare(client))
            bare_s = time.perf_counter() - started
            started = time.perf_counter()
            outcome = run_batch(
                client,
                lines,
                bench.workdir / "out.jsonl",
                policy=None,
                max_in_flight=window,
                strict=False,
                retry_failed=False,
                console=Console(file=io.StringIO()),
            )
            batch_s = time.perf_counter() - started
    assert outcome.tally.succeeded == jobs, outcome.tally
    print(
        f"\n{jobs} jobs, {window} in flight, one worker x {window} threads, "
        f"{latency_ms:g} ms provider"
    )
    print(f"{'bare asyncio client (baseline)':34}{jobs / bare_s:8.0f} jobs/s")
    print(f"{'turnout batch (parse, write, fsync)':34}{jobs / batch_s:8.0f} jobs/s")
    print(f"batch / bare: {bare_s / batch_s:.2f}")


@app.command()
def serve(
    requests: Annotated[
        int, typer.Option(help="Sequential requests (and bare client jobs).")
    ] = 300,
) -> None:
    """turnout serve's cost: a chat completion over HTTP against the bare client's submit-wait."""
    from producers.client import Client

    token = secrets.token_urlsafe(32)
    with bench_stack(0, concurrency=8) as bench, worker(bench, "workers.app", 8):
        port = free_port()
        with ChildProcess(
            "serve",
            [sys.executable, "-m", "ops.cli", "serve", "--port", str(port)],
            env={**bench.env, "TURNOUT_API_TOKENS": token},
            log_dir=bench.workdir,
            grace_s=30,
        ) as process:
            url = f"http://{LOOPBACK}:{port}"
            with httpx.Client(headers={"authorization": f"Bearer {token}"}, timeout=30) as http:

                def healthy() -> bool:
                    try:
                        return http.get(f"{url}/healthz").status_code == 200
                    except httpx.TransportError:
                        return False

                process.wait_until(healthy, timeout_s=30, what="200 at /healthz", interval_s=0.1)
                body = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
                via_http: list[float] = []
                for n in range(requests + 20):
                    started = time.perf_counter()
                    answer = http.post(f"{url}/v1/chat/completions", json=body)
                    via_http.append(time.perf_counter() - started)
                    if answer.status_code != 200:
                        raise RuntimeError(f"request {n}: {answer.status_code} {answer.text}")
            bare: list[float] = []
            with Client(settings=bench.settings()) as client:
                for n in range(requests + 20):
                    started = time.perf_counter()
                    client.complete(f"serve {n}", timeout=60)
                    bare.append(time.perf_counter() - started)
    http_ms = [s * 1000 for s in via_http[20:]]
    bare_ms = [s * 1000 for s in bare[20:]]
    print(f"\n{requests} sequential chat completions, 0 ms simulator, one worker")
    print(f"{'':34}{'median ms':>12}{'p99 ms':>10}")
    for name, values in (
        ("bare client submit->result", bare_ms),
        ("turnout serve over HTTP", http_ms),
    ):
        print(f"{name:34}{statistics.median(values):12.2f}{pct(values, 0.99):10.2f}")
    over, under = statistics.median(http_ms), statistics.median(bare_ms)
    print(f"serve / bare: {over / under:.2f} (+{over - under:.2f} ms per request)")


def _celery_conf(bench: Bench) -> dict[str, Any]:
    from routing.celery_config import celery_config

    return celery_config(bench.settings())


@app.command("keys-rotation")
def keys_rotation(
    tries: Annotated[int, typer.Option(help="Set, rotate, revoke cycles.")] = 20,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 3,
) -> None:
    """From `turnout keys rotate` to the first call with the new key, and from `revoke` to the
    last call with the old one, under a steady load (ops/bench/key_rotation.py)."""
    from ops.bench.key_rotation import SteadyLoad, one_try, rotation_stack, summary

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    embedded = None if redis_answers(url) else EmbeddedRedis().start()
    redis_url = embedded.url if embedded else url
    namespace = f"bench-{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix="turnout-keys-bench-"))
    try:
        with rotation_stack(redis_url, namespace, workdir, workers=workers) as stack:
            load = SteadyLoad(stack.settings).start()
            try:
                measured = [one_try(stack) for _ in range(tries)]
            finally:
                load.stop()
    finally:
        with redis.Redis.from_url(redis_url) as client:
            delete_namespace(client, namespace)
        if embedded:
            embedded.stop()
    result = summary(measured)
    print(f"\nkey rotation, {workers} worker processes, steady load, median of {tries} tries")
    for name, value in result.items():
        print(f"{name:34}{value:>10}")
    print(f"jobs: {len(load.states)}, failed: {load.failed}")


@app.command()
def lanes(
    jobs: Annotated[int, typer.Option(help="Jobs of the bulk batch each round.")] = 3000,
    concurrency: Annotated[int, typer.Option(help="Worker threads.")] = 16,
    latency_ms: Annotated[float, typer.Option(help="Simulator latency per call.")] = 100,
    rounds: Annotated[int, typer.Option(help="Pairs of rounds (shared, then lanes).")] = 1,
    tail: Annotated[
        int, typer.Option(help="Interactive jobs stop once the batch has fewer queued.")
    ] = 200,
) -> None:
    """Interactive submit-to-start under a running batch, lanes against one shared queue."""
    from ops.bench.lanes import run_rounds

    with bench_stack(latency_ms, concurrency=concurrency) as bench:
        print(
            f"a {jobs}-job bulk batch, one interactive job a second, one worker of "
            f"{concurrency} threads, simulator {latency_ms:g} ms"
        )
        run_rounds(bench, jobs=jobs, concurrency=concurrency, tail=tail, rounds=rounds)


@app.command("lanes-window")
def lanes_window(
    jobs: Annotated[int, typer.Option(help="Jobs per run.")] = 1000,
    window: Annotated[int, typer.Option(help="Jobs in flight.")] = 32,
    latency_ms: Annotated[float, typer.Option(help="Simulated provider latency.")] = 50,
    rounds: Annotated[int, typer.Option(help="Pairs of runs (interactive, bulk).")] = 2,
) -> None:
    """A windowed producer finds its queue empty at most fetches: does the bulk lane, whose
    queues a worker looks at between blocks on the interactive one, cost it throughput?"""
    import asyncio

    from producers.client import Client

    async def windowed(client: Client) -> None:
        slots = asyncio.Semaphore(window)

        async def one(n: int) -> None:
            async with slots:
                await (await client.asubmit(f"windowed {n}")).wait()

        await asyncio.gather(*(one(n) for n in range(jobs)))
        await client.aclose()

    lanes: tuple[Lane, ...] = ("interactive", "bulk")
    with (
        bench_stack(latency_ms, concurrency=window * 2) as bench,
        worker(bench, "workers.app", window * 2),
    ):
        with Client(settings=bench.settings()) as warm:
            warm.complete("warm up", timeout=60)
        print(f"{jobs} jobs, window {window}, simulator {latency_ms:g} ms")
        for _ in range(rounds):
            for lane in lanes:
                with Client(settings=bench.settings(), lane=lane) as client:
                    started = time.perf_counter()
                    asyncio.run(windowed(client))
                    took = time.perf_counter() - started
                print(f"{lane:>12}: {jobs / took:6.1f} jobs/s ({took:.1f}s)", flush=True)


@app.command("keys-cpu")
def keys_cpu(
    jobs: Annotated[int, typer.Option(help="Jobs queued per drain.")] = 2000,
    rounds: Annotated[int, typer.Option(help="Drains per variant, alternated.")] = 3,
    concurrency: Annotated[int, typer.Option(help="Threads of the one worker process.")] = 64,
    latency_ms: Annotated[float, typer.Option(help="Simulated provider latency.")] = 5,
) -> None:
    """Worker CPU per job with the deployment's key from the environment and from the key
    store, alternated in the same run against the same simulator."""
    from producers.client import Client
    from workers.key_crypto import Keyring, MasterKey
    from workers.key_store import KeyStore

    rows: dict[str, list[dict[str, float]]] = {"environment": [], "key store": []}
    with bench_stack(latency_ms, concurrency=concurrency) as bench:
        master = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        bench.env["TURNOUT_ENCRYPTION_KEY"] = master
        env_config = Path(bench.env["TURNOUT_CONFIG"])
        data = yaml.safe_load(env_config.read_text())
        deployment = data["deployments"][0]
        deployment.pop("api_key_env")
        deployment["api_key"] = "store:bench"
        store_config = bench.workdir / "turnout-store.yaml"
        store_config.write_text(yaml.safe_dump(data))
        with redis.Redis.from_url(bench.redis_url, decode_responses=True) as client:
            keyring = Keyring(MasterKey.parse(master, "bench"))
            KeyStore(client, Keys(bench.namespace), keyring).set(
                "bench", bench.env["BENCH_SIM_KEY"]
            )
        for _ in range(rounds):
            for name, config in (("environment", env_config), ("key store", store_config)):
                bench.env["TURNOUT_CONFIG"] = str(config)
                with Client(settings=bench.settings()) as client:
                    handles = [client.submit(f"keys {name} {n}") for n in range(jobs)]

                    def finished(client: Client = client, handles: list[Any] = handles) -> bool:
                        if client.store.state(handles[-1].job_id) not in FINISHED:
                            return False
                        return all(
                            client.store.state(h.job_id) is JobState.SUCCEEDED for h in handles
                        )

                    rows[name].append(drain(bench, "workers.app", concurrency, jobs, finished))
    print(
        f"\nworker CPU per job, one process -c {concurrency}, {jobs} jobs x {rounds} drains "
        f"each, {latency_ms:g} ms provider"
    )
    print(f"{'key from':16}{'CPU ms/job (median)':>22}{'each drain':>40}{'jobs/s':>10}")
    for name, drains in rows.items():
        cpu = [row["cpu_ms"] for row in drains]
        each = ", ".join(f"{c:.2f}" for c in cpu)
        rate = statistics.median(row["jobs_s"] for row in drains)
        print(f"{name:16}{statistics.median(cpu):22.3f}{each:>40}{rate:10.0f}")


@app.command()
def cost(
    jobs: Annotated[int, typer.Option(help="Jobs queued per drain.")] = 2000,
    rounds: Annotated[int, typer.Option(help="Drains per variant and concurrency.")] = 3,
    concurrency: Annotated[
        list[int] | None, typer.Option(help="Threads of the one worker process (repeatable).")
    ] = None,
    latency_ms: Annotated[float, typer.Option(help="Simulated provider latency.")] = 500,
    tree: Annotated[
        list[Path] | None,
        typer.Option(help="Also run turnout's worker from this checkout (repeatable)."),
    ] = None,
) -> None:
    """Cost per job of turnout's worker and of a Celery task that only sleeps, interleaved
    rounds on a private Redis: jobs/s, worker CPU, Redis CPU, Redis commands."""
    from ops.bench.cost import Variant, measure_drain, report
    from ops.bench.floor_app import sleep
    from producers.client import Client
    from routing.redis_clock import redis_time

    levels = concurrency or [200, 400]
    trees = {"turnout": None} | {f"turnout@{p.name}": p.resolve() for p in tree or []}
    floor = Variant("celery sleep task")
    variants = [Variant(name) for name in trees]
    with (
        EmbeddedRedis() as private,
        bench_stack(latency_ms, concurrency=levels[0], redis_url=private.url) as bench,
    ):
        r = redis.Redis.from_url(bench.redis_url)
        keys = Keys(bench.namespace)
        queue = keys.queue_list(keys.queue)
        floor_app = sleep.app
        floor_app.conf.update(_celery_conf(bench))

        def start(app_module: str, threads: int, path: Path | None) -> Any:
            @contextmanager
            def started() -> Iterator[int]:
                env = dict(bench.env)
                if path is not None:
                    env["PYTHONPATH"] = str(path)
                command = worker_command(
                    app=app_module, concurrency=threads, loglevel="warning", heartbeat=False
                )
                name = f"{app_module}-{secrets.token_hex(3)}"
                # In the tree's own directory: ``python -m`` puts the working directory
                # first on sys.path, ahead of PYTHONPATH.
                with ChildProcess(
                    name, command, env=env, log_dir=bench.workdir, grace_s=60, cwd=path
                ) as process:
                    yield process.pid

            return started

        def floor_drain(threads: int) -> Any:
            counter = keys.scratch(f"slept-{secrets.token_hex(4)}")
            with floor_app.producer_or_acquire() as producer:
                for _ in range(jobs):
                    sleep.apply_async((latency_ms / 1000, counter), producer=producer)
            return measure_drain(
                start("ops.bench.floor_app", threads, None),
                r,
                queue,
                jobs,
                lambda: int(r.get(counter) or 0) >= jobs,
                "get",
            )

        def turnout_drain(threads: int, path: Path | None) -> Any:
            with Client(settings=bench.settings()) as client:
                finished_before = _finished_today(r, keys, redis_time(r).day)
                for n in range(jobs):
                    client.submit(f"cost {n}")
                day = redis_time(r).day
                return measure_drain(
                    start("workers.app", threads, path),
                    r,
                    queue,
                    jobs,
                    lambda: _finished_today(r, keys, day) - finished_before >= jobs,
                    "hmget",
                )

        for threads in levels:
            for n in range(rounds):
                floor.drains.setdefault(threads, []).append(floor_drain(threads))
                for variant, path in zip(variants, trees.values(), strict=True):
                    variant.drains.setdefault(threads, []).append(turnout_drain(threads, path))
                print(f"-c{threads} round {n + 1}/{rounds} done", file=sys.stderr)
        r.close()
    print(
        f"\none worker process, threads pool, {jobs} jobs per drain, {latency_ms:g} ms provider, "
        f"{rounds} rounds interleaved, private Redis"
    )
    for line in report(variants, floor, levels):
        print(line)


def _finished_today(r: redis.Redis, keys: Keys, day: int) -> int:
    """Jobs succeeded and failed on ``day`` (finish_job's day counts): one HMGET."""
    succeeded, failed = r.hmget(keys.job_counts_on(day), ["succeeded", "failed"])
    return int(succeeded or 0) + int(failed or 0)


if __name__ == "__main__":
    app()
