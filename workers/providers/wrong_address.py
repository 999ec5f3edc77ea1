"""A 404 from something that is not the provider's API: the route's base URL is wrong.

Every provider answers an unknown model or deployment with a JSON error of its own (OpenAI's
``{"error": {...}}``, google.rpc's ``{"error": {"code": 404, "status": "NOT_FOUND"}}``, AWS's
``{"message": ...}``, Ollama's ``{"error": "model 'x' not found"}``). A 404 whose body is no
JSON object at all (a web server's HTML page, a proxy's or Go's ``404 page not found``, an empty
body), or OpenAI's own ``Invalid URL (POST /v1/...)``, says the request went to the wrong place:
a configuration error, not a missing model, and nothing a key would mend. The message names the
URL the call went to, with no query string and no userinfo (where a key might be), so the
operator sees which base URL to fix.

Checked before the adapter reads the reply, for the job's call, the health check and
``turnout providers check`` alike (workers.runtime, workers.health, workers.providers.inventory).
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

from routing.errors import Misconfigured
from workers.http import HttpCall, HttpReply

#: OpenAI's answer to a path it does not serve (other OpenAI-compatible servers copy it).
_INVALID_URL = "invalid url ("


def check_address(call: HttpCall, reply: HttpReply) -> None:
    """Raise Misconfigured when ``reply`` is a 404 that no provider API would send."""
    if reply.status != 404 or not _not_the_api(reply.body):
        return
    raise Misconfigured(
        f"404 at {shown_url(call.url)}: this is not the provider's API (is the base URL right?)",
        status_code=404,
    )


def shown_url(url: str) -> str:
    """``url`` as an error may show it: scheme, host, port and path; never a query string or a
    userinfo part, where a credential could be."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unreadable URL)"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, f"{host}{port}", parts.path, "", ""))


def _not_the_api(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return True  # HTML, plain text, nothing at all
    if not isinstance(data, dict):
        return True
    error = data.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    return isinstance(message, str) and message.lower().startswith(_INVALID_URL)
