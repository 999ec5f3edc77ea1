"""``turnout serve``: run the OpenAI-compatible front on uvicorn, one process.

One process is enough for most fleets: a request waiting for its job is an idle coroutine on
one shared pub/sub connection, not a thread, so thousands wait at once. For more, or for a
second machine, run more ``turnout serve`` processes behind a load balancer: they share nothing
but Redis. (uvicorn's ``--workers`` would do the same with less control, so it is not offered.)
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.markup import escape

from producers.cli_support import err, fail
from producers.settings import ProducerSettings
from routing.errors import ConfigError

log = logging.getLogger("turnout.serve")

#: On SIGTERM, requests still waiting for their jobs get this long; their jobs run on anyway.
GRACEFUL_SHUTDOWN_S = 10


def serve(
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on (0.0.0.0 only inside a container). Requests must name "
            "it, a loopback name or one of TURNOUT_SERVE_ALLOWED_HOSTS in their Host header."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="Serve without bearer tokens: anyone who reaches the port can spend the "
            "providers' keys, and read every job. Refused while TURNOUT_API_TOKENS or "
            "TURNOUT_ADMIN_TOKENS is set.",
        ),
    ] = False,
) -> None:
    """Serve OpenAI's chat completions API (/v1/chat/completions) over turnout's queue: point
    any OpenAI SDK at http://HOST:PORT/v1 with a token from TURNOUT_API_TOKENS. Also
    /v1/jobs (submit without waiting, read a job), /healthz, and the OpenAPI document at
    /openapi.json (docs at /docs). One process; run more behind a load balancer to scale."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Imported here: `turnout` loads this module for every command, FastAPI only for this one.
    import uvicorn

    from producers.client import Client
    from producers.http_front.app import create_app

    settings = ProducerSettings()
    try:
        client = Client(settings=settings)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    try:
        app = create_app(client, settings, no_auth=no_auth, bind_host=host)
    except ConfigError as exc:
        client.close()
        raise fail(str(exc)) from None
    if no_auth:
        err.print(
            f"[bold red]WARNING: authentication is OFF (--no-auth). Anyone who can reach "
            f"{escape(host)}:{port} can submit jobs on your providers' keys.[/]",
            highlight=False,
        )
    log.info("serving on http://%s:%d/v1 (OpenAPI document at /openapi.json)", host, port)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # our logging.basicConfig, one format for every line
        access_log=False,  # access_log.AccessLog instead: no query strings
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
