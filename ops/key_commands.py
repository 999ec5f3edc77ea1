"""``turnout keys``: the encrypted key store, by hand.

``set``, ``rotate``, ``revoke``, ``rollback`` and ``reencrypt`` hold the master key (they seal
what they are handed, on stdin or at a hidden prompt: never an argument, which would sit in the
shell's history and in every process list); each waits until every live worker process has
applied its change and says how many did and how fast. ``list`` holds no master key: it reads
metadata and usage only (routing.key_usage), and shows each key by its id and last 4
characters.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Annotated, Any

import redis
import typer
from rich.markup import escape
from rich.table import Table

from producers.cli_support import err, fail, out
from routing.config import load_configured, stored_key_name
from routing.errors import ConfigError
from routing.key_usage import KeyUsage, StoredKeyInfo, env_key_id, read_key_store, read_key_usage
from routing.keys import Keys
from routing.redis_clock import redis_time

keys_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The encrypted key store: set, rotate, revoke and list API keys, without a restart.",
)

#: How long a change waits for the worker processes to apply it, unless told.
WAIT_S = 5.0


def _store() -> Any:
    """The key store with this process's master key, or exit 2 saying why not."""
    from workers.key_crypto import Keyring, KeyStoreError
    from workers.key_store import KeyStore
    from workers.settings import WorkerSettings

    settings = WorkerSettings()
    try:
        keyring = Keyring.from_settings(settings)
        keyring.require()
    except KeyStoreError as exc:
        raise fail(str(exc)) from None
    client = redis.Redis.from_url(
        settings.redis_url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5
    )
    return KeyStore(client, Keys(settings.namespace), keyring)


def _check_name(name: str) -> str:
    from workers.key_store import NAME_PATTERN

    if not re.match(NAME_PATTERN, name):
        raise fail(
            f"{name!r} is not a key store name: letters, digits, _ . - (up to 64, starting with "
            "a letter or digit); the config names it store:NAME"
        )
    return name


def _read_value(name: str) -> str:
    """The value, from stdin when it is not a terminal, else from a hidden prompt."""
    if sys.stdin.isatty():
        value = str(
            typer.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True, err=True)
        )
    else:
        value = sys.stdin.read()
    value = value.strip()
    if not value:
        raise fail("no value was given (pipe it on stdin, or type it at the prompt)")
    if any(c.isspace() for c in value):
        raise fail("the value holds whitespace inside it: an API key has none (pasted twice?)")
    return value


def _changed(what: str, act: Any, wait_s: float) -> None:
    from workers.key_crypto import KeyStoreError

    store = _store()
    started = time.monotonic()
    try:
        version = act(store)
    except KeyStoreError as exc:
        raise fail(str(exc)) from None
    except redis.RedisError as exc:
        raise fail(f"Redis unreachable: {exc}", code=1) from None
    reach = store.wait_for_workers(version, timeout_s=wait_s)
    took_ms = (time.monotonic() - started) * 1000
    if reach.alive == 0:
        out.print(f"{what}; no worker process holds keys now", highlight=False)
        return
    out.print(
        f"{what}; {reach.confirmed} of {reach.alive} worker processes applied it "
        f"in {took_ms:.0f} ms",
        highlight=False,
    )
    if not reach.complete:
        err.print(
            f"[yellow]{reach.alive - reach.confirmed} worker process(es) did not confirm within "
            f"{wait_s:g} s[/] (busy, or cut off from Redis: they catch up when they reach it)"
        )
        raise typer.Exit(1)


WaitOption = Annotated[
    float, typer.Option("--wait", help="Seconds to wait for every worker process to apply it.")
]


@keys_app.command("set")
def keys_set(
    name: Annotated[str, typer.Argument(help="The name a config uses as store:NAME.")],
    wait: WaitOption = WAIT_S,
) -> None:
    """Store a new key (the value from stdin, or a hidden prompt): sealed with AES-256-GCM
    under the master key before it leaves this process."""
    _check_name(name)
    value = _read_value(name)
    _changed(f"store:{name} set", lambda store: store.set(name, value), wait)


@keys_app.command("rotate")
def keys_rotate(
    name: Annotated[str, typer.Argument(help="A key store name.")],
    grace: Annotated[
        float, typer.Option(help="Seconds the previous value is kept (for rollback).")
    ] = 300.0,
    wait: WaitOption = WAIT_S,
) -> None:
    """A new value for a key: every call a worker starts once it has followed carries the new
    one; calls in flight finish with the old one, which is kept for --grace seconds
    (``turnout keys rollback`` brings it back), then removed."""
    _check_name(name)
    value = _read_value(name)
    _changed(
        f"store:{name} rotated (previous kept {grace:g} s)",
        lambda store: store.rotate(name, value, grace_s=grace),
        wait,
    )


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Argument(help="A key store name.")],
    wait: WaitOption = WAIT_S,
) -> None:
    """Remove a key from the fleet at once (its previous value too): once every worker process
    has confirmed, no call they start carries it; its routes are out of rotation."""
    _check_name(name)
    _changed(f"store:{name} revoked", lambda store: store.revoke(name), wait)


@keys_app.command("rollback")
def keys_rollback(
    name: Annotated[str, typer.Argument(help="A key store name.")],
    wait: WaitOption = WAIT_S,
) -> None:
    """Bring back the value a rotation replaced, while its grace lasts."""
    _check_name(name)
    _changed(f"store:{name} rolled back", lambda store: store.rollback(name), wait)


@keys_app.command("reencrypt")
def keys_reencrypt(wait: WaitOption = WAIT_S) -> None:
    """Seal every value again under TURNOUT_ENCRYPTION_KEY, opening each with the key that
    sealed it (TURNOUT_ENCRYPTION_KEY_PREVIOUS while changing master keys)."""
    from workers.key_crypto import KeyStoreError

    store = _store()
    try:
        names = store.reencrypt()
    except KeyStoreError as exc:
        raise fail(str(exc)) from None
    except redis.RedisError as exc:
        raise fail(f"Redis unreachable: {exc}", code=1) from None
    kid = store.keyring.require().key_id
    if not names:
        out.print(f"every value is sealed under master key {kid} already", highlight=False)
        return
    reach = store.wait_for_workers(store.version(), timeout_s=wait)
    out.print(
        f"resealed under master key {kid}: {', '.join(names)}; {reach.confirmed} of "
        f"{reach.alive} worker processes applied it",
        highlight=False,
    )


def _config_sources() -> dict[str, list[str]]:
    """Key id -> the deployments whose config names it (store names by their live slot later)."""
    from routing.settings import CoreSettings

    settings = CoreSettings()
    if settings.config_path is None:
        return {}
    try:
        config = load_configured(settings.config_path)
    except ConfigError as exc:
        err.print(f"[yellow]ignoring the config:[/] {escape(str(exc))}")
        return {}
    used: dict[str, list[str]] = {}
    for deployment in config.deployments.values():
        for source in deployment.key_envs:
            name = stored_key_name(source)
            key = f"store:{name}" if name is not None else env_key_id(source)
            used.setdefault(key, []).append(deployment.id)
    return used


def key_rows(
    stored: list[StoredKeyInfo], usage: list[KeyUsage], used_by: dict[str, list[str]], now_ms: int
) -> list[dict[str, Any]]:
    """One row per key: each store value (live and previous) and each variable's key, with
    its usage; masked, never the value."""
    by_id = {u.key_id: u for u in usage}
    rows: list[dict[str, Any]] = []

    def row(key_id: str, source: str, masked: str, state: str, **extra: Any) -> None:
        u = by_id.pop(key_id, None)
        rows.append(
            {
                "key": key_id,
                "source": source,
                "masked": u.masked if u and masked == "" else masked,
                "state": state,
                "calls_today": u.calls_today if u else 0,
                "calls": u.calls if u else 0,
                "prompt_tokens": u.prompt_tokens if u else 0,
                "completion_tokens": u.completion_tokens if u else 0,
                "cost_usd": round(u.cost_usd, 6) if u else 0.0,
                "errors": u.errors if u else {},
                "last_used": u.last_used / 1000 if u and u.last_used else None,
                "auth_failing": bool(u and u.auth_failing),
                **extra,
            }
        )

    for info in stored:
        deployments = used_by.get(f"store:{info.name}", [])
        if info.key_id is not None:
            row(
                info.key_id,
                "store",
                info.masked,
                "live",
                age_s=(now_ms - info.set_at) / 1000 if info.set_at else None,
                deployments=deployments,
            )
        elif info.revoked_at:
            rows.append(
                {
                    "key": f"store:{info.name}",
                    "source": "store",
                    "masked": "",
                    "state": "revoked",
                    "revoked_at": info.revoked_at / 1000,
                    "deployments": deployments,
                }
            )
        if info.previous_key_id is not None:
            row(
                info.previous_key_id,
                "store",
                info.previous_masked,
                "previous",
                until=info.previous_until / 1000 if info.previous_until else None,
                deployments=deployments,
            )
    for key_id in sorted(k for k in used_by if k.startswith("env:")):
        row(key_id, "environment", "", "configured", deployments=used_by[key_id])
    for key_id in sorted(by_id):  # counted keys no longer in the store or the config
        row(key_id, by_id[key_id].source, "", "retired")
    return rows


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Every key: where it comes from (environment or store), masked to its last 4, its age,
    when it was last used, calls today and in all, tokens, cost, errors by class; a key whose
    last call was refused as auth is flagged. Needs no master key."""
    from routing.settings import CoreSettings

    settings = CoreSettings()
    keys = Keys(settings.namespace)
    try:
        client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=5
        )
        breakers = redis.Redis.from_url(
            settings.breaker_redis_url or settings.redis_url,
            socket_connect_timeout=2,
            socket_timeout=5,
        )
        now = redis_time(client)
        stored = read_key_store(client, keys)
        usage = read_key_usage(breakers, keys, redis_time(breakers).day)
    except redis.RedisError as exc:
        raise fail(f"Redis unreachable: {exc}", code=1) from None
    rows = key_rows(stored, usage, _config_sources(), now.ms)
    if as_json:
        sys.stdout.write(json.dumps({"keys": rows, "read_at": now.seconds}) + "\n")
        return
    if not rows:
        out.print(
            "no keys yet: none stored (turnout keys set NAME), none counted, none in the config"
        )
        return
    table = Table(title="API keys")
    for column in (
        "key",
        "source",
        "masked",
        "state",
        "age",
        "last used",
        "today",
        "calls",
        "errors",
        "cost",
    ):
        table.add_column(column)
    for r in rows:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(r.get("errors", {}).items()))
        flag = " [red]auth failing[/]" if r.get("auth_failing") else ""
        table.add_row(
            escape(r["key"]),
            r["source"],
            escape(r["masked"]),
            r["state"] + flag,
            _ago(r.get("age_s")),
            _ago(now.seconds - r["last_used"] if r.get("last_used") else None),
            str(r.get("calls_today", "")),
            str(r.get("calls", "")),
            escape(errors),
            f"${r.get('cost_usd', 0.0):.4f}",
        )
    out.print(table)


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"
