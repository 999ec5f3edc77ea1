"""URLs as turnout prints them: a password in a URL (``redis://:pw@host``, ``?password=``) is
shown as ``****``, so a terminal, a log or a pasted screenshot never carries it.

Every command that shows a Redis URL (``turnout up``'s exports, error messages) passes it
through ``masked_url``; what connects keeps the URL as given.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "****"
#: Query parameters that carry a password (redis-py reads ``password`` from the query too).
_SECRET_PARAMS = frozenset({"password", "pass", "pwd", "secret", "token"})


def masked_url(url: str) -> str:
    """``url`` with its userinfo password and secret query values replaced by ``****``; a
    value that is no URL, or holds no password, comes back unchanged."""
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:  # not a URL (an invalid port, a stray bracket): nothing to find
        return url
    netloc = parts.netloc
    if has_password:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{MASK}@{hostport}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name.lower() in _SECRET_PARAMS for name, _ in pairs):
        query = urlencode(
            [(name, MASK if name.lower() in _SECRET_PARAMS else value) for name, value in pairs],
            safe="*",
        )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))
