"""Which key each route of a worker carries now, and which routes are out for want of one.

A route whose key comes from the key store (``store:NAME``) gets its adapter built on the
value the store holds; when the value changes, a new adapter replaces the old one in the
runtime's map, so a call that already took the old adapter finishes with the old key and every
call after it carries the new one. A revoked, missing or refused value takes the route out of
rotation with the reason (the planner passes it over as ``missing_credential``, like a route
whose variable is unset), and a call that planned on it before the change fails over without
moving its breaker (``KeyWithdrawn``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, MutableMapping

import redis

from routing.config import TurnoutConfig, stored_key_name
from routing.errors import AuthFailed
from routing.key_usage import env_key_id, masked
from routing.keys import Keys
from routing.planning import routes_of
from routing.routes import KeyLabel, Route
from workers.key_crypto import Keyring, KeyStoreError, last4_of
from workers.key_follower import KeyFollower
from workers.key_store import KeyStore, StoredKey
from workers.providers.base import ProviderAdapter
from workers.providers.registry import build_adapter
from workers.redaction import Redactor, remember_minted_secret
from workers.settings import WorkerSettings

log = logging.getLogger("turnout.keys")


class KeyWithdrawn(AuthFailed):
    """The route's key was revoked (or became unusable here) after the job planned on it: the
    job moves on to its next route. The worker's condition, not the provider's: no breaker
    counts it."""

    route_at_fault = False


def stored_names(config: TurnoutConfig) -> list[str]:
    """Every key store name the config uses."""
    names = {
        name
        for deployment in config.deployments.values()
        for source in deployment.key_envs
        if (name := stored_key_name(source)) is not None
    }
    return sorted(names)


def store_routes(config: TurnoutConfig) -> list[Route]:
    return [
        route
        for deployment in config.deployments.values()
        for route in routes_of(deployment, config)
        if stored_key_name(route.key_env) is not None
    ]


def env_key_labels(routes: list[Route], settings: WorkerSettings) -> dict[str, KeyLabel]:
    """The labels of routes whose key is a variable's: ``env:NAME`` and its mask."""
    labels = {}
    for route in routes:
        if route.key_env and stored_key_name(route.key_env) is None:
            value = settings.value_of(route.key_env) or ""
            labels[route.id] = KeyLabel(env_key_id(route.key_env), masked(last4_of(value)))
    return labels


class StoreBackedRoutes:
    """The store-backed routes of one worker process, kept current by ``apply``."""

    def __init__(
        self,
        settings: WorkerSettings,
        config: TurnoutConfig,
        *,
        adapters: MutableMapping[str, ProviderAdapter],
        labels: MutableMapping[str, KeyLabel],
        remember_secret: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self.routes = store_routes(config)
        self._adapters = adapters
        self._labels = labels
        self._remember_secret = remember_secret
        #: route id -> the sealed value its adapter was built on
        self._sealed: dict[str, str] = {}
        #: route id -> why it is out of rotation (store-backed routes only)
        self.unusable: dict[str, str] = {}
        self._lock = threading.Lock()

    def apply(self, found: dict[str, StoredKey]) -> bool:
        """Bring every store-backed route to what the store holds; True when anything changed.
        An out-of-rotation mark is set before the adapter goes, so no new plan picks a route
        whose adapter is gone, and a new adapter is in place before the mark is lifted."""
        with self._lock:
            changed = False
            unusable = dict(self.unusable)
            for route in self.routes:
                name = stored_key_name(route.key_env)
                assert name is not None
                key = found.get(name)
                if key is not None and key.state == "live" and key.value is not None:
                    if self._sealed.get(route.id) != key.sealed:
                        source = route.key_env or ""
                        self._remember_secret(key.value)
                        self._adapters[route.id] = build_adapter(
                            route.deployment.model_copy(update={"api_key_env": source}),
                            self._settings.with_value(source, key.value),
                        )
                        self._labels[route.id] = KeyLabel(key.key_id, key.masked)
                        self._sealed[route.id] = key.sealed
                        log.warning(
                            "key store: route %s now carries %s (%s)",
                            route.id,
                            key.key_id,
                            key.masked,
                        )
                        changed = True
                    if unusable.pop(route.id, None) is not None:
                        changed = True
                else:
                    reason = key.reason if key is not None else f"store:{name} was not read"
                    if unusable.get(route.id) != reason:
                        unusable[route.id] = reason
                        changed = True
                        log.warning("route %s is out of rotation: %s", route.id, reason)
                    self._labels.pop(route.id, None)  # first: a call without an adapter
                    if self._adapters.pop(route.id, None) is not None:  # is counted for no key
                        changed = True
                    self._sealed.pop(route.id, None)
            self.unusable = unusable
            return changed

    def refuse_all(self, reason: str) -> None:
        """Every store-backed route out of rotation, for ``reason`` (no master key here, or
        the store could not be read at all)."""
        with self._lock:
            self.unusable = {route.id: f"{route.key_env}: {reason}" for route in self.routes}
            for route in self.routes:
                self._adapters.pop(route.id, None)
                self._labels.pop(route.id, None)
                self._sealed.pop(route.id, None)


def store_route_problems(
    settings: WorkerSettings, config: TurnoutConfig, client_of: Callable[[], redis.Redis]
) -> dict[str, str]:
    """Route id -> why a store-backed route cannot be called, as a worker starting now finds
    it: no master key here, or a value missing, revoked or refused. Raises KeyStoreError for a
    master key given wrongly (a worker should not start on it), redis.RedisError when the
    store cannot be read."""
    routes = store_routes(config)
    if not routes:
        return {}
    keyring = Keyring.from_settings(settings)
    if keyring.current is None:
        return {route.id: f"{route.key_env}: {keyring.missing}" for route in routes}
    client = client_of()
    try:
        _, found = KeyStore(client, Keys(settings.namespace), keyring).load(stored_names(config))
    finally:
        client.close()
    problems = {}
    for route in routes:
        key = found[stored_key_name(route.key_env) or ""]
        if key.state != "live":
            problems[route.id] = key.reason
    return problems


def follow_key_store(
    settings: WorkerSettings,
    config: TurnoutConfig,
    *,
    adapters: MutableMapping[str, ProviderAdapter],
    labels: MutableMapping[str, KeyLabel],
    redactor: Redactor,
    on_change: Callable[[dict[str, str]], None],
) -> tuple[StoreBackedRoutes | None, KeyFollower | None]:
    """A worker process's store-backed routes, given their keys now and kept current by a
    follower thread; ``on_change`` gets the routes out of rotation (and why) after the first
    reading and after every change. Fail closed: without a master key, or with one given
    wrongly, or with the store out of reach at start, those routes are out with the reason
    (the follower catches up once Redis answers) and the others serve. (None, None): the config
    names no stored key."""
    names = stored_names(config)
    if not names:
        return None, None

    # A stored value is known to every Redactor of the process, the log filter's included
    # (workers.log_setup builds its own), not only to the runtime's: a provider's error body
    # that echoes the key must be masked in a logged traceback as in a job's attempt log.
    def remember(secret: str) -> None:
        redactor.add(secret)  # kept for good by the runtime's Redactor
        remember_minted_secret(secret)  # and known to the log filter's

    stored = StoreBackedRoutes(
        settings, config, adapters=adapters, labels=labels, remember_secret=remember
    )
    try:
        keyring = Keyring.from_settings(settings)
    except KeyStoreError as exc:
        keyring = Keyring(None, missing=str(exc))
    for text in keyring.texts:
        remember(text)
    if keyring.current is None:
        stored.refuse_all(keyring.missing)
        on_change(stored.unusable)
        return stored, None
    first = [True]

    def apply(_version: int, found: dict[str, StoredKey]) -> None:
        if stored.apply(found) or first[0]:
            on_change(stored.unusable)
        first[0] = False

    client = redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=5,
        socket_connect_timeout=5,
        decode_responses=True,
        client_name=f"turnout-keys:{settings.namespace}",
    )
    keys = Keys(settings.namespace)
    follower = KeyFollower(client, keys, KeyStore(client, keys, keyring), names, apply)
    try:
        follower.load()
    except redis.RedisError as exc:
        stored.refuse_all(f"the key store could not be read ({exc})")
        on_change(stored.unusable)
    return stored, follower.start()
