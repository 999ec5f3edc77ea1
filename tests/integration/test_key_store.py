"""The encrypted key store on a real fleet: worker processes, a simulator counting calls per key,
``turnout keys`` as the operator runs it.

A rotation reaches every worker within about a second and no job fails meanwhile; after a revoke
is confirmed no call carries the old key; a canary value is nowhere in plaintext (Redis, logs,
CLI output, metrics); a wrong master key and a flipped byte are refused with a clear message; a
worker without the master key serves its environment's routes and says why the others are out.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import generate_latest

from ops.bench.key_rotation import (
    ENV_KEY_VAR,
    STORE_ROUTE,
    STORED_NAME,
    SteadyLoad,
    new_api_key,
    new_master_key,
    one_try,
    rotation_stack,
)
from ops.exporter import FleetCollector, exporter_registry
from ops.simulator.base import key_fingerprint
from producers.client import Client
from routing.config import load_config
from routing.keys import Keys
from routing.models import JobState
from tests.helpers import eventually
from tests.integration.conftest import run_cli
from tests.integration.harness import Sim, Worker, settings_for, stack_env, write_config
from workers.key_crypto import Keyring, MasterKey
from workers.key_store import KeyStore

#: A call that took its adapter before its worker applied a revoke may still be on its way.
IN_FLIGHT_S = 0.5


def keys_cli(
    args: list[str], env: dict[str, str], value: str | None = None
) -> subprocess.CompletedProcess[str]:
    turnout = Path(sys.executable).parent / "turnout"
    return subprocess.run(
        [str(turnout), "keys", *args],
        env=env,
        input=value if value is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def usage_by_key(env: dict[str, str]) -> dict[str, dict[str, object]]:
    listed = keys_cli(["list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    return {row["key"]: row for row in json.loads(listed.stdout)["keys"]}


def test_rotate_and_revoke_reach_three_workers_under_a_steady_load(redis_url, namespace, tmp_path):
    with rotation_stack(redis_url, namespace, tmp_path, workers=3) as stack:
        first = new_api_key("cli")
        stored = keys_cli(["set", STORED_NAME], stack.env, value=first + "\n")
        assert stored.returncode == 0, stored.stderr
        load = SteadyLoad(stack.settings).start()
        try:
            stack.wait_for_calls_with(first)
            rotated = keys_cli(["rotate", STORED_NAME, "--grace", "60"], stack.env, new_api_key())
            assert rotated.returncode == 0, rotated.stderr
            assert "3 of 3 worker processes applied it" in rotated.stdout
            revoked = keys_cli(["revoke", STORED_NAME], stack.env)
            assert revoked.returncode == 0, revoked.stderr
            assert "3 of 3 worker processes applied it" in revoked.stdout
            tries = [one_try(stack) for _ in range(3)]
        finally:
            load.stop()
        for t in tries:
            assert t.rotate_first_new_s < 3.0, t  # about a second, with room for a loaded box
            assert t.old_after_confirmed_s <= IN_FLIGHT_S, t
        assert load.states, "the load ran"
        assert load.failed == 0, load.errors[:5]
        assert not load.errors

        # Every call the simulator saw is counted against its key, by id, in turnout's usage.
        usage = usage_by_key(stack.env)
        env_calls = stack.calls_with(stack.env[ENV_KEY_VAR])
        assert env_calls is not None
        assert usage[f"env:{ENV_KEY_VAR}"]["calls"] == env_calls["calls"]
        assert usage[f"store:{STORED_NAME}"]["state"] == "revoked"
        store_ids = [k for k in usage if k.startswith(f"store:{STORED_NAME}@")]
        assert len(store_ids) >= 1 + 2 * len(tries)  # each value that carried calls
        assert all(usage[k]["state"] == "retired" for k in store_ids)
        counted = sum(int(str(usage[k]["calls"])) for k in store_ids)
        assert counted == sum(
            int(v["calls"])
            for fingerprint, v in stack.sim.state.stats.key_calls.items()
            if fingerprint != key_fingerprint(stack.env[ENV_KEY_VAR])
        )


def test_rotation_keeps_the_previous_value_for_its_grace_then_drops_it(
    redis_url, namespace, tmp_path
):
    with rotation_stack(redis_url, namespace, tmp_path, workers=1) as stack:
        first, second = new_api_key("a"), new_api_key("b")
        assert keys_cli(["set", STORED_NAME], stack.env, first).returncode == 0
        rotated = keys_cli(["rotate", STORED_NAME, "--grace", "2"], stack.env, second)
        assert rotated.returncode == 0, rotated.stderr
        usage = usage_by_key(stack.env)
        assert usage[f"store:{STORED_NAME}@2"]["state"] == "live"
        assert usage[f"store:{STORED_NAME}@2"]["masked"] == f"…{second[-4:]}"
        assert usage[f"store:{STORED_NAME}@1"]["state"] == "previous"
        assert usage[f"store:{STORED_NAME}@1"]["masked"] == f"…{first[-4:]}"
        eventually(
            lambda: usage_by_key(stack.env).get(f"store:{STORED_NAME}@1") is None,
            timeout=15,
            interval=0.5,
            what="the previous value gone after its grace",
        )
        with redis.Redis.from_url(redis_url) as client:
            assert not client.exists(Keys(namespace).key_store.previous(STORED_NAME))
        late = keys_cli(["rollback", STORED_NAME], stack.env)
        assert late.returncode == 2
        assert "no previous value within its grace" in late.stderr


def _every_value(client: Any, pattern: str) -> dict[bytes, bytes]:
    """Every key matching ``pattern`` and everything it holds, as bytes."""
    found: dict[bytes, bytes] = {}
    for key in client.scan_iter(pattern, count=1000):
        kind = client.type(key)
        if kind == b"string":
            value = client.get(key) or b""
        elif kind == b"hash":
            value = b"\n".join(k + b"=" + v for k, v in client.hgetall(key).items())
        elif kind == b"list":
            value = b"\n".join(client.lrange(key, 0, -1))
        elif kind == b"set":
            value = b"\n".join(client.smembers(key))
        elif kind == b"zset":
            value = b"\n".join(m for m, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == b"stream":
            value = repr(client.xrange(key)).encode()
        else:
            value = b""
        found[key] = value
    return found


def test_a_canary_is_nowhere_in_plaintext_and_tampering_is_refused(redis_url, namespace, tmp_path):
    canary = f"sk-canary-{new_api_key('c')}"
    with rotation_stack(redis_url, namespace, tmp_path, workers=1) as stack:
        outputs = []
        stored = keys_cli(["set", STORED_NAME], stack.env, canary)
        assert stored.returncode == 0, stored.stderr
        outputs.append(stored)
        load = SteadyLoad(stack.settings, threads=2).start()
        try:
            stack.wait_for_calls_with(canary)
            outputs += [
                keys_cli(["list"], stack.env),
                keys_cli(["list", "--json"], stack.env),
                run_cli(["status", "--json"], stack.env),
                run_cli(["status"], stack.env),
            ]
            config = load_config(stack.env["TURNOUT_CONFIG"])
            collector = FleetCollector(stack.settings, config)
            metrics = generate_latest(exporter_registry(collector)).decode()
            collector.close()
            assert f'turnout_key_calls_total{{key="store:{STORED_NAME}@1"' in metrics
            assert f"…{canary[-4:]}" in metrics

            # A wrong master key is refused, and says which key sealed the value.
            wrong = {**stack.env, "TURNOUT_ENCRYPTION_KEY": new_master_key()}
            refused = keys_cli(["rotate", STORED_NAME], wrong, new_api_key())
            assert refused.returncode == 2
            sealed_under = stack.store.keyring.require().key_id
            assert f"sealed under master key {sealed_under}" in refused.stderr
            outputs.append(refused)

            # A flipped byte of the ciphertext: the worker refuses it and moves the route out.
            client = redis.Redis.from_url(redis_url, decode_responses=True)
            store_keys = Keys(namespace).key_store
            sealed = json.loads(client.hget(store_keys.record(STORED_NAME), "current") or "{}")
            raw = bytearray(base64.b64decode(sealed["ciphertext"]))
            raw[3] ^= 0x01
            sealed["ciphertext"] = base64.b64encode(raw).decode()
            client.hset(store_keys.record(STORED_NAME), "current", json.dumps(sealed))
            client.publish(store_keys.channel, client.incr(store_keys.version))
            tampered_at = time.time()
            worker = stack.workers[0]

            def refused_in_log() -> bool:
                return "failed its integrity check (AES-GCM tag)" in worker.log()

            eventually(refused_in_log, timeout=10, what="the worker refusing the changed value")
            shown = run_cli(["status", "--json"], stack.env)
            routes = {r["id"]: r for r in json.loads(shown.stdout)["deployments"]}
            assert routes[STORE_ROUTE]["health"]["state"] == "unusable"
            assert "failed its integrity check" in routes[STORE_ROUTE]["health"]["detail"]
            outputs.append(shown)
            time.sleep(1.0)
            reencrypt = keys_cli(["reencrypt"], stack.env)
            assert reencrypt.returncode == 2
            assert "failed its integrity check (AES-GCM tag)" in reencrypt.stderr
            outputs.append(reencrypt)
            client.close()
        finally:
            load.stop()
        assert load.failed == 0, load.errors[:5]
        canary_calls = stack.calls_with(canary)
        assert canary_calls is not None
        assert canary_calls["last_at"] <= tampered_at + 5.0  # then never again

        everything = _every_value(redis.Redis.from_url(redis_url), f"{namespace}*")
        assert everything, "the namespace holds the fleet's keys"
        holding = [
            k for k, v in everything.items() if canary.encode() in v or canary[:16].encode() in v
        ]
        assert holding == [], f"the canary in plaintext in {holding}"
        assert any(b"ciphertext" in v for v in everything.values())
        for shown in outputs:
            assert canary not in shown.stdout + shown.stderr
            assert canary[:16] not in shown.stdout + shown.stderr
        assert canary[:16] not in metrics
        for process in stack.workers:
            assert canary[:16] not in process.log()


def test_a_worker_without_the_master_key_serves_env_routes_and_says_why_others_are_out(
    redis_url, namespace, tmp_path
):
    env_sim = Sim("plain", key="sim-plain-key-123456789")
    stored_sim = Sim("sealed", key="sim-sealed-key-123456789")
    config = write_config(
        tmp_path / "turnout.yaml",
        [stored_sim, env_sim],
        deployments={"sealed": {"api_key_env": None, "api_key": "store:sealed"}},
    )
    env = stack_env(redis_url, namespace, config, [env_sim])
    master = new_master_key()
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        store = KeyStore(client, Keys(namespace), Keyring(MasterKey.parse(master, "test")))
        store.set("sealed", "sim-sealed-key-123456789")
    worker = Worker(env, tmp_path / "worker.log")
    producer = Client(settings=settings_for(env))
    try:
        refused = keys_cli(["set", "other"], env, new_api_key())
        assert refused.returncode == 2
        assert (
            "TURNOUT_ENCRYPTION_KEY (or TURNOUT_ENCRYPTION_KEY_FILE) is not set" in refused.stderr
        )

        worker.start()
        log = worker.log()
        assert (
            "route sealed is out of rotation: store:sealed: TURNOUT_ENCRYPTION_KEY (or "
            "TURNOUT_ENCRYPTION_KEY_FILE) is not set here" in log
        )
        assert "plain is out of rotation" not in log
        result = producer.submit("hello").wait(timeout=30)
        assert result.state is JobState.SUCCEEDED
        assert [(a.deployment, a.outcome, a.reason) for a in result.attempts] == [
            ("sealed", "skipped", "missing_credential"),
            ("plain", "ok", None),
        ]
        assert "TURNOUT_ENCRYPTION_KEY" in (result.attempts[0].message or "")
        assert stored_sim.chat_requests() == 0
        shown = run_cli(["status", "--json"], env)
        routes = {r["id"]: r for r in json.loads(shown.stdout)["deployments"]}
        assert routes["sealed"]["health"]["state"] == "unusable"
        assert "TURNOUT_ENCRYPTION_KEY" in routes["sealed"]["health"]["detail"]
        assert routes["plain"]["health"]["state"] != "unusable"
    finally:
        producer.close()
        worker.stop()
        env_sim.stop()
        stored_sim.stop()


@pytest.mark.parametrize("weak", ["a" * 43, base64.urlsafe_b64encode(b"x" * 16).decode()])
def test_a_weak_master_key_stops_the_cli_and_the_worker(redis_url, namespace, tmp_path, weak):
    sim = Sim("sealed", key="sim-sealed-key-123456789")
    config = write_config(
        tmp_path / "turnout.yaml",
        [sim],
        deployments={"sealed": {"api_key_env": None, "api_key": "store:sealed"}},
    )
    env = {**stack_env(redis_url, namespace, config, []), "TURNOUT_ENCRYPTION_KEY": weak}
    try:
        refused = keys_cli(["set", "sealed"], env, new_api_key())
        assert refused.returncode == 2
        assert "TURNOUT_ENCRYPTION_KEY" in refused.stderr
        assert "base64.urlsafe_b64encode(secrets.token_bytes(32))" in refused.stderr
        assert weak not in refused.stderr
        worker = Worker(env, tmp_path / "worker.log").start(wait=False)
        assert worker.process is not None
        assert worker.process.wait(timeout_s=60) == 78
        assert "cannot start: TURNOUT_ENCRYPTION_KEY" in worker.log()
    finally:
        sim.stop()


def test_a_stored_key_the_provider_refuses_is_flagged_auth_failing_everywhere(
    redis_url, namespace, tmp_path
):
    sim = Sim("pool", key="sim-pool-key-123456789")
    config = write_config(
        tmp_path / "turnout.yaml",
        [sim],
        deployments={"pool": {"api_key": "store:stale"}},
        policy={"retries_per_target": 0},
    )
    master = new_master_key()
    env = {**stack_env(redis_url, namespace, config, [sim]), "TURNOUT_ENCRYPTION_KEY": master}
    assert keys_cli(["set", "stale"], env, "sk-stale-revoked-at-the-provider").returncode == 0
    worker = Worker(env, tmp_path / "worker.log").start()
    producer = Client(settings=settings_for(env))
    try:
        for n in range(12):
            result = producer.submit(f"job {n}").wait(timeout=30)
            assert result.state is JobState.SUCCEEDED, result.error
        usage = usage_by_key(env)
        stale = usage["store:stale@1"]
        assert stale["auth_failing"] is True
        assert int(str(stale["errors"]["auth"])) >= 1  # type: ignore[index]
        assert usage["env:SIM_KEY_POOL"]["auth_failing"] is False
        shown = json.loads(run_cli(["status", "--json"], env).stdout)
        by_key = {k["key"]: k for k in shown["keys"]}
        assert by_key["store:stale@1"]["auth_failing"] is True
        assert by_key["store:stale@1"]["masked"] == "…ider"
        listed = keys_cli(["list"], {**env, "COLUMNS": "200"})
        assert "auth failing" in listed.stdout
        collector = FleetCollector(settings_for(env), load_config(config))
        metrics = generate_latest(exporter_registry(collector)).decode()
        collector.close()
        assert 'turnout_key_auth_failing{key="store:stale@1",masked="…ider"} 1.0' in metrics
        assert "sk-stale-revoked" not in listed.stdout + json.dumps(shown) + metrics
    finally:
        producer.close()
        worker.stop()
        sim.stop()
