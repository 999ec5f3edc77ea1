"""A canary API key, set where a real key would be, appears nowhere it must not."""

import secrets

from ops.simulator.openai_sim import mask_key
from routing.keys import Keys
from tests.integration.conftest import run_cli
from tests.integration.harness import Sim, Worker, key_env, stack_env, write_config


def dump_namespace(client, namespace):
    """Every key and value under the namespace (job records, attempt logs, Celery's keys)."""
    dumped = []
    for key in client.scan_iter(match=Keys(namespace).pattern):
        kind = client.type(key)
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            value = kind
        dumped.append(f"{key} {value}")
    return "\n".join(dumped)


def test_a_canary_key_appears_in_no_redis_value_log_or_cli_output(redis_url, namespace, tmp_path):
    canary = f"sk-canary-{secrets.token_hex(16)}"
    # The primary expects another key, so it answers 401 and echoes the canary back masked,
    # the way OpenAI does; the secondary accepts its own canary.
    primary = Sim("primary", key="the-key-primary-really-wants")
    secondary_canary = f"sk-canary-{secrets.token_hex(16)}"
    secondary = Sim("secondary", key=secondary_canary)
    config = write_config(tmp_path / "turnout.yaml", [primary, secondary])
    env = stack_env(redis_url, namespace, config, [primary, secondary])
    env[key_env(primary)] = canary
    worker = Worker(env, tmp_path / "worker.log", loglevel="debug")
    try:
        worker.start()
        done = run_cli(["submit", "--prompt", "hello", "--wait", "--json"], env)
        assert done.returncode == 0, done.stderr
        failing = run_cli(["submit", "--prompt", "hi", "--target", "primary", "--wait"], env)
        assert failing.returncode == 1
        assert "credential" in failing.stderr, "why the primary is unavailable"
    finally:
        worker.stop()
        primary.stop()
        secondary.stop()

    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stored = dump_namespace(client, namespace)
    client.close()
    assert '"outcome":"auth"' in stored, "the failed attempt was recorded"
    seen_everywhere = {
        "redis": stored,
        "worker log": worker.log(),
        "cli output": done.stdout + done.stderr + failing.stdout + failing.stderr,
    }
    for where, text in seen_everywhere.items():
        for secret in (canary, secondary_canary, mask_key(canary)):
            assert secret not in text, f"{secret[:12]}... leaked into the {where}"
