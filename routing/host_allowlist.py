"""Which ``Host`` names a turnout HTTP server answers for: the guard against DNS rebinding.

A web page on ``evil.example`` can make its name resolve to 127.0.0.1 and then have the
visitor's browser send requests to ``turnout serve`` or Flower on the visitor's own machine.
The browser still names the page's host in the ``Host`` header, so a server that answers only
the names it is really reached by (loopback, the address it binds, names its operator lists)
never answers such a page, whatever the page has learnt of a token or password. ``turnout
serve`` (producers.http_front.host_check) and turnout's Flower (ops.guarded_flower) share this.

Binding ``0.0.0.0`` (or ``::``, as in a container) listens on every interface, which says
nothing about the names callers use: it adds no name, and the operator lists the real ones
(compose's service name, the public domain). ``*`` allows any name, for a server behind a
proxy that checks them itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from routing.errors import ConfigError

#: The names of this machine that no DNS answer can take over.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: Bind addresses that mean "every interface", not a name anyone is reached by.
EVERY_INTERFACE = frozenset({"", "0.0.0.0", "::"})
#: In an allow-list: every name is allowed.
ANY_HOST = "*"


def host_name(authority: str) -> str:
    """The name part of a ``Host`` header value: lower-cased, without port, IPv6 brackets or
    a final dot (``"API.example.:8000"`` is ``"api.example"``, ``"[::1]:8000"`` is ``"::1"``)."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        name, _, _ = authority[1:].partition("]")
        return name
    if authority.count(":") > 1:  # a bare IPv6 address: no port to cut
        return authority
    name, _, _ = authority.partition(":")
    return name.rstrip(".")


def parse_host_list(raw: str | None) -> list[str]:
    """The names of a comma-separated setting (TURNOUT_SERVE_ALLOWED_HOSTS, ...); blanks
    dropped, each as ``host_name`` normalises it, ``*`` kept as is."""
    names = [part.strip() for part in (raw or "").split(",")]
    for name in names:
        if any(mark in name for mark in ("/", "@", "://", " ")):
            raise ConfigError(
                f"{_short(name)!r} in an allowed-hosts setting is not a host name; fix: list "
                "names only, comma-separated (api.example.com, not https://api.example.com/)"
            )
    return [name if name == ANY_HOST else host_name(name) for name in names if name]


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:39] + "…"


class HostAllowList:
    """The ``Host`` names a server answers for."""

    def __init__(self, names: Iterable[str]) -> None:
        listed = set(names)
        self.any_host = ANY_HOST in listed
        self.names = frozenset(host_name(name) for name in listed - {ANY_HOST})

    @classmethod
    def for_server(cls, bind_host: str, extra: str | None = None) -> HostAllowList:
        """Loopback names, ``bind_host`` unless it means every interface, and ``extra``
        (a comma-separated setting)."""
        bound = host_name(bind_host)
        own = set() if bound in EVERY_INTERFACE else {bound}
        return cls({*LOOPBACK_NAMES, *own, *parse_host_list(extra)})

    def allows(self, authority: str | None) -> bool:
        """Whether a request whose ``Host`` is ``authority`` is answered. A request without
        one is not (HTTP/1.1 requires it; a browser always sends it)."""
        if self.any_host:
            return True
        return authority is not None and host_name(authority) in self.names

    def __repr__(self) -> str:
        return "HostAllowList(*)" if self.any_host else f"HostAllowList({sorted(self.names)})"
