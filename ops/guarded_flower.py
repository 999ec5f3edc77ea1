"""turnout's Flower: Flower's own app and options, with the three guards Flower lacks.

    python -m ops.guarded_flower -A workers.app flower --address=127.0.0.1 --port=5555

Everywhere turnout starts Flower (``ops.stack.flower_command``, so ``turnout up`` and the
tests, and docker-compose.yml) it starts this, which is ``celery ... flower`` with:

- **a password check**: it refuses to start without FLOWER_BASIC_AUTH, or with a password
  that is .env.example's placeholder or weak (routing.secret_strength, the check serve's
  tokens pass), exiting 78 (EX_CONFIG, as a worker does) with what to fix;
- **a Host allow-list** (routing.host_allowlist): a request naming a host other than loopback,
  the ``--address`` bound (unless every interface) or TURNOUT_FLOWER_ALLOWED_HOSTS is answered
  421, so a DNS-rebinding page cannot drive Flower's API with the visitor's saved password;
- **credentials on /metrics and /healthcheck**, which Flower 2 answers to anyone (its
  handlers are not ``@authenticated`` and no option changes that; FLOWER_UNAUTHENTICATED_API
  only opens the API further). Prometheus sends basic auth (ops/monitoring/prometheus.yml),
  the compose healthcheck too.

Flower has no hook for any of this: the Host check and the two handlers are a subclass of its
Tornado ``Application`` (``find_handler``, Tornado's routing entry point), and the command below
is ``flower.command.flower`` with that class and the password check. It follows Flower 2.x;
tests/integration/test_flower.py runs it for real, so an upgrade that moves things fails there.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
from typing import Any

import click
import tornado.web
from celery.bin.base import CeleryCommand
from flower import command as flower_cli
from flower.app import Flower
from flower.urls import settings as flower_settings
from flower.views import monitor
from tornado.httputil import HTTPServerRequest
from tornado.options import options

from routing.host_allowlist import HostAllowList
from routing.secret_strength import MAKE_ONE, secret_weakness

#: Names Flower answers besides loopback ones and its --address, comma-separated.
ALLOWED_HOSTS_ENV = "TURNOUT_FLOWER_ALLOWED_HOSTS"
#: sysexits.h EX_CONFIG, what a worker exits with on a bad config (workers.app).
EXIT_CONFIG = 78


def basic_auth_problem(credentials: list[str] | None) -> str | None:
    """Why Flower's ``user:password`` pairs (FLOWER_BASIC_AUTH or --basic-auth) are unfit to
    start with, or None. Names pairs by position, never a password."""
    pairs = [pair for pair in credentials or [] if pair]
    if not pairs:
        return (
            "FLOWER_BASIC_AUTH is not set: anyone who reaches the port could revoke tasks and "
            f"shut workers down; fix: set it to user:password ({MAKE_ONE})"
        )
    problems = []
    for number, pair in enumerate(pairs, 1):
        where = f"the password of pair {number} of {len(pairs)}"
        user, sep, password = pair.partition(":")
        if not sep or not user:
            problems.append(f"pair {number} of {len(pairs)} is not user:password")
        elif weakness := secret_weakness(password):
            problems.append(f"{where} {weakness}")
    if problems:
        return f"FLOWER_BASIC_AUTH: {'; '.join(problems)}; fix: {MAKE_ONE}"
    return None


class MisdirectedRequest(tornado.web.RequestHandler):
    """The 421 of a request naming a host Flower does not answer for, whatever its method."""

    def check_xsrf_cookie(self) -> None:
        """Nothing to protect: this handler only refuses."""

    def prepare(self) -> None:
        self.set_status(421)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(
            "Misdirected request: this Flower does not answer for the host named in the Host "
            f"header; its operator can add the name to {ALLOWED_HOSTS_ENV}.\n"
        )


class AuthenticatedMetrics(monitor.Metrics):  # type: ignore[misc]  # Flower is untyped
    @tornado.web.authenticated
    async def get(self) -> None:
        await super().get()


class AuthenticatedHealthcheck(monitor.Healthcheck):  # type: ignore[misc]
    @tornado.web.authenticated
    async def get(self) -> None:
        await super().get()


class GuardedFlower(Flower):  # type: ignore[misc]  # Flower is untyped
    """Flower's app, answering allowed Host names only, with /metrics and /healthcheck behind
    its basic auth (which Flower checks in ``get_current_user``: a wrong or missing password
    is its 401 with ``WWW-Authenticate``)."""

    def __init__(self, *args: Any, hosts: HostAllowList, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hosts = hosts
        prefix = f"/{self.options.url_prefix.strip('/')}" if self.options.url_prefix else ""
        self.authenticated_paths: dict[str, type[tornado.web.RequestHandler]] = {
            f"{prefix}/metrics": AuthenticatedMetrics,
            f"{prefix}/healthcheck": AuthenticatedHealthcheck,
        }

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> Any:
        # The header itself: Tornado's request.host says 127.0.0.1 when there is none.
        if not self.hosts.allows(request.headers.get("Host")):
            return self.get_handler_delegate(request, MisdirectedRequest)
        guarded = self.authenticated_paths.get(request.path)
        if guarded is not None:
            return self.get_handler_delegate(request, guarded)
        return super().find_handler(request, **kwargs)


@click.command(name="flower", cls=CeleryCommand, context_settings={"ignore_unknown_options": True})
@click.argument("tornado_argv", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def guarded_flower(ctx: click.Context, tornado_argv: tuple[str, ...]) -> None:
    """Flower, behind a checked password and a Host allow-list."""
    flower_cli.warn_about_celery_args_used_in_flower_command(ctx, tornado_argv)
    flower_cli.apply_env_options()
    flower_cli.apply_options(sys.argv[0], tornado_argv)
    if _truthy(os.environ.get("FLOWER_UNAUTHENTICATED_API")):
        sys.stderr.write(
            "turnout flower: cannot start: FLOWER_UNAUTHENTICATED_API opens Flower's API (task "
            "control included) to anyone who reaches the port; fix: unset it\n"
        )
        raise SystemExit(EXIT_CONFIG)
    if not options.auth and (problem := basic_auth_problem(options.basic_auth)):
        # Flower's own OAuth (``--auth``) guards the pages instead of basic auth: allowed.
        sys.stderr.write(f"turnout flower: cannot start: {problem}\n")
        raise SystemExit(EXIT_CONFIG)
    hosts = HostAllowList.for_server(options.address, os.environ.get(ALLOWED_HOSTS_ENV))
    flower_cli.extract_settings()
    flower_cli.setup_logging()

    app = ctx.obj.app
    flower_app = GuardedFlower(capp=app, options=options, hosts=hosts, **flower_settings)
    atexit.register(flower_app.stop)
    signal.signal(signal.SIGTERM, flower_cli.sigterm_handler)
    port = flower_app.start_http_server()
    if not ctx.obj.quiet:
        flower_cli.print_banner(app, "ssl_options" in flower_settings, port)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):  # SIGTERM's way out, as Flower's
        flower_app.start()
    # Stopped: leave now. A normal exit joins the threads of Flower's inspector, which may be
    # in the middle of its broadcasts to the workers (a second each, eight of them): SIGTERM
    # then took over 10 s to stop Flower on a loaded machine, longer than a supervisor waits.
    flower_app.stop()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def main() -> None:
    """Celery's own command line, its ``flower`` (added from Flower's entry point) replaced."""
    from celery.bin.celery import celery
    from celery.bin.celery import main as celery_main

    celery.add_command(guarded_flower)
    sys.exit(celery_main())


if __name__ == "__main__":
    main()
