"""The key store against a real Redis: set, rotate with a grace, revoke, rollback, reencrypt;
what a worker reads of it; each key's usage counted with its calls' records; and a worker's
routes following a change while a call in flight keeps its key."""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import pytest
import redis

from routing.config import parse_config
from routing.errors import ErrorClass
from routing.fleet_router import FleetRouter
from routing.key_usage import read_key_store, read_key_usage
from routing.keys import Keys
from routing.models import CompletionRequest
from routing.redis_clock import redis_time
from routing.routes import CallOutcome, KeyLabel, Spent
from workers.key_crypto import Keyring, KeyStoreError, MasterKey, SealedValue
from workers.key_routes import StoreBackedRoutes, follow_key_store, stored_names
from workers.key_store import KeyStore
from workers.redaction import Redactor
from workers.settings import WorkerSettings


def ring(*previous: MasterKey) -> Keyring:
    key = MasterKey.parse(base64.urlsafe_b64encode(os.urandom(32)).decode(), "test")
    return Keyring(key, previous)


@pytest.fixture
def store(redis_client, namespace) -> KeyStore:
    return KeyStore(redis_client, Keys(namespace), ring())


def test_set_rotate_revoke_and_set_again_walk_the_slots(store, redis_client, namespace):
    store.set("openai", "sk-first-0123456789")
    with pytest.raises(KeyStoreError, match="already holds a value; rotate it"):
        store.set("openai", "sk-other-0123456789")
    version_before = store.version()
    store.rotate("openai", "sk-second-0123456789", grace_s=30)
    assert store.version() == version_before + 1
    _, found = store.load(["openai", "absent"])
    assert (found["openai"].state, found["openai"].value, found["openai"].slot) == (
        "live",
        "sk-second-0123456789",
        2,
    )
    assert found["absent"].state == "absent"
    assert "turnout keys set absent" in found["absent"].reason
    previous = Keys(namespace).key_store.previous("openai")
    assert 0 < redis_client.pttl(previous) <= 30_000
    [info] = read_key_store(redis_client, Keys(namespace))
    assert (info.slot, info.masked, info.previous_slot, info.previous_masked) == (
        2,
        "…6789",
        1,
        "…6789",
    )
    assert info.previous_until is not None

    store.revoke("openai")
    _, found = store.load(["openai"])
    assert found["openai"].state == "revoked"
    assert not redis_client.exists(previous)
    with pytest.raises(KeyStoreError, match="has no value"):
        store.revoke("openai")
    store.set("openai", "sk-third-0123456789")
    _, found = store.load(["openai"])
    assert found["openai"].slot == 3


def test_rollback_brings_the_previous_value_back_within_its_grace(store):
    store.set("k", "sk-first-0123456789")
    store.rotate("k", "sk-second-0123456789", grace_s=30)
    store.rollback("k")
    _, found = store.load(["k"])
    assert (found["k"].value, found["k"].slot) == ("sk-first-0123456789", 1)
    with pytest.raises(KeyStoreError, match="no previous value within its grace"):
        store.rollback("k")


def test_a_write_against_a_record_changed_meanwhile_is_refused_by_the_script(store):
    store.set("k", "sk-first-0123456789")
    stale = store.keyring.seal("k", 2, "sk-stale-0123456789").to_json()
    status, version = store._run("rotate", "k", "", stale, 10.0, 2, "", "")
    assert (status, version) == ("changed", 0)


def test_every_change_is_published_with_the_new_version(store, redis_client, namespace):
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(Keys(namespace).key_store.channel)
    time.sleep(0.05)
    version = store.set("k", "sk-first-0123456789")
    message = None
    deadline = time.monotonic() + 5
    while message is None and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
    pubsub.close()
    assert message is not None
    assert int(message["data"]) == version


def test_a_worker_reading_with_no_wrong_or_tampered_key_refuses_saying_why(
    store, redis_client, namespace
):
    store.set("k", "sk-first-0123456789")
    keys = Keys(namespace)
    _, none = KeyStore(redis_client, keys, Keyring(None, missing="no master key here")).load(["k"])
    assert (none["k"].state, none["k"].value) == ("refused", None)
    assert "no master key here" in none["k"].reason
    _, wrong = KeyStore(redis_client, keys, ring()).load(["k"])
    assert wrong["k"].state == "refused"
    assert "sealed under master key" in wrong["k"].reason
    with pytest.raises(KeyStoreError, match="sealed under master key"):
        KeyStore(redis_client, keys, ring()).rotate("k", "sk-second-0123456789")

    record = keys.key_store.record("k")
    sealed = SealedValue.from_json("k", redis_client.hget(record, "current"))
    raw = bytearray(base64.b64decode(sealed.ciphertext))
    raw[-1] ^= 0x01
    changed = sealed.model_copy(update={"ciphertext": base64.b64encode(raw).decode()})
    redis_client.hset(record, "current", changed.to_json())
    _, tampered = store.load(["k"])
    assert (tampered["k"].state, tampered["k"].value) == ("refused", None)
    assert "failed its integrity check (AES-GCM tag)" in tampered["k"].reason


def test_reencrypt_moves_every_value_to_the_new_master_key(store, redis_client, namespace):
    store.set("a", "sk-aaaa-0123456789")
    store.set("b", "sk-bbbb-0123456789")
    store.rotate("b", "sk-bbbb-second-0123456789", grace_s=60)
    old = store.keyring.require()
    moving = KeyStore(redis_client, Keys(namespace), ring(old))
    assert moving.reencrypt() == ["a", "b"]
    assert moving.reencrypt() == []
    new_only = KeyStore(redis_client, Keys(namespace), Keyring(moving.keyring.require()))
    _, found = new_only.load(["a", "b"])
    assert found["a"].value == "sk-aaaa-0123456789"
    assert found["b"].value == "sk-bbbb-second-0123456789"
    previous = redis_client.get(Keys(namespace).key_store.previous("b"))
    assert SealedValue.from_json("b", previous).kid == moving.keyring.require().key_id
    assert redis_client.pttl(Keys(namespace).key_store.previous("b")) > 0


def test_a_calls_record_counts_its_keys_usage_in_the_same_script(redis_client, namespace):
    keys = Keys(namespace)
    router = FleetRouter(
        redis_client,
        keys.route_prefix,
        key_usage_prefix=keys.key_usage_prefix,
        key_usage_ids=keys.key_usage_ids,
    )
    config = parse_config(
        {"deployments": [{"id": "d", "provider": "openai", "model": "gpt-4o-mini"}]}
    )
    from routing.planning import routes_of

    [route] = routes_of(config.deployments["d"], config)
    label = KeyLabel("store:k@1", "…6789")
    for outcome in (
        CallOutcome(error_class=None, latency_s=0.1, spent=Spent(10, 5, 0.002), key=label),
        CallOutcome(error_class=None, latency_s=0.1, spent=Spent(1, 1, 0.001), key=label),
        CallOutcome(error_class=ErrorClass.AUTH, latency_s=0.1, key=label),
    ):
        grant = router.acquire([route], order="given", tokens=1).grant
        assert grant is not None
        router.record(grant, outcome)
    [usage] = read_key_usage(redis_client, keys, redis_time(redis_client).day)
    assert (usage.key_id, usage.masked, usage.calls, usage.calls_today) == (
        "store:k@1",
        "…6789",
        3,
        3,
    )
    assert (usage.prompt_tokens, usage.completion_tokens) == (11, 6)
    assert usage.cost_usd == pytest.approx(0.003)
    assert usage.errors == {"auth": 1}
    assert usage.auth_failing
    assert usage.last_used is not None


def test_a_worker_follows_a_rotation_while_a_call_in_flight_keeps_its_key(store):
    config = parse_config(
        {
            "deployments": [
                {
                    "id": "d",
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "api_key_env": "OPENAI_API_KEY",
                    "api_key": "store:k",
                }
            ]
        }
    )
    assert stored_names(config) == ["k"]
    adapters: dict[str, Any] = {}
    labels: dict[str, KeyLabel] = {}
    secrets: list[str] = []
    routes = StoreBackedRoutes(
        WorkerSettings.model_validate({}),
        config,
        adapters=adapters,
        labels=labels,
        remember_secret=secrets.append,
    )
    store.set("k", "sk-first-0123456789")
    assert routes.apply(store.load(["k"])[1])
    request = CompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}]})
    in_flight = adapters["d/store:k"]
    assert in_flight.build_call(request).headers["authorization"] == "Bearer sk-first-0123456789"
    assert labels["d/store:k"] == KeyLabel("store:k@1", "…6789")
    assert not routes.apply(store.load(["k"])[1]), "nothing changed: the adapter stays"

    store.rotate("k", "sk-second-0123456789", grace_s=30)
    assert routes.apply(store.load(["k"])[1])
    assert adapters["d/store:k"].build_call(request).headers["authorization"] == (
        "Bearer sk-second-0123456789"
    )
    assert in_flight.build_call(request).headers["authorization"] == ("Bearer sk-first-0123456789")
    assert secrets == ["sk-first-0123456789", "sk-second-0123456789"]

    store.revoke("k")
    assert routes.apply(store.load(["k"])[1])
    assert "d/store:k" not in adapters
    assert "d/store:k" not in labels
    assert routes.unusable == {"d/store:k": "store:k was revoked"}


def test_a_follower_catches_up_on_a_change_whose_message_it_missed(
    store, redis_client, redis_url, namespace
):
    """A change written without its pub/sub message (a worker reconnecting missed it) still
    reaches the follower, by its periodic look at the version; and it acknowledges it."""
    from workers.key_follower import KeyFollower

    applied: list[tuple[int, str | None]] = []
    store.set("k", "sk-first-0123456789")
    follower = KeyFollower(
        redis.Redis.from_url(redis_url, decode_responses=True),
        Keys(namespace),
        store,
        ["k"],
        lambda version, found: applied.append((version, found["k"].value)),
        every_s=0.2,
    )
    follower.load()
    follower.start()
    try:
        store_keys = Keys(namespace).key_store
        sealed = store.keyring.seal("k", 2, "sk-quiet-0123456789").to_json()
        redis_client.hset(store_keys.record("k"), mapping={"current": sealed, "slot": 2})
        quiet_version = redis_client.incr(store_keys.version)  # no PUBLISH
        deadline = time.monotonic() + 5
        while (quiet_version, "sk-quiet-0123456789") not in applied:
            assert time.monotonic() < deadline, applied
            time.sleep(0.02)
        assert store.wait_for_workers(quiet_version, timeout_s=2).complete
        assert store.reach(quiet_version) == (1, 1)
    finally:
        follower.stop()
    assert store.reach(quiet_version) == (0, 0), "a stopped follower takes its ack away"


def test_a_stored_value_is_masked_by_every_redactor_of_the_process_the_log_filters_too(
    redis_url, redis_client, namespace
):
    """workers.log_setup installs a Redactor of its own on the log handlers: a stored key (and
    the master key) must reach it too, or a provider's 401 echoing the key in a logged
    traceback would go out in clear."""
    master = base64.urlsafe_b64encode(os.urandom(32)).decode()
    settings = WorkerSettings.model_validate(
        {"REDIS_URL": redis_url, "TURNOUT_NAMESPACE": namespace, "TURNOUT_ENCRYPTION_KEY": master}
    )
    KeyStore(redis_client, Keys(namespace), Keyring.from_settings(settings)).set(
        "k", "sk-stored-canary-0123456789"
    )
    config = parse_config(
        {
            "deployments": [
                {"id": "d", "provider": "openai", "model": "gpt-4o-mini", "api_key": "store:k"}
            ]
        }
    )
    log_filter = Redactor()  # built before the key was read, as the log handlers' is
    _, follower = follow_key_store(
        settings, config, adapters={}, labels={}, redactor=Redactor(), on_change=lambda _: None
    )
    try:
        assert "sk-stored-canary-0123456789" not in log_filter(
            "401: bad key sk-stored-canary-0123456789"
        )
        assert master not in log_filter(f"master {master}")
    finally:
        if follower is not None:
            follower.stop()
