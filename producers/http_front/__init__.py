"""``turnout serve``: an OpenAI-compatible HTTP front on turnout's job queue.

Callers that already speak OpenAI (its SDKs, curl, anything with a base URL setting) submit
jobs without a line of turnout code. Modules, one concern each:

- ``app``: ``create_app(client, settings)``, the routes and the OpenAPI document
- ``schemas``: what the routes answer, as the document's models
- ``errors``: every failure in OpenAI's error shape, and its status
- ``auth``: bearer tokens (TURNOUT_API_TOKENS, TURNOUT_ADMIN_TOKENS), checked before a body is read
- ``ownership``: a job is shown to the token that submitted it, and to admin tokens
- ``body_limit``: the request size limit (TURNOUT_SERVE_MAX_BODY)
- ``access_log``: one line per request, without query strings
- ``command``: the ``serve`` command, which runs the app on uvicorn

This package imports only the command, so ``turnout`` starts without loading FastAPI:
``from producers.http_front.app import create_app`` for the app.
"""

from producers.http_front.command import serve

__all__ = ["serve"]
