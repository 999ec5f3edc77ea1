"""The Host allow-list serve and Flower share: which names a request may use."""

from __future__ import annotations

import pytest

from routing.host_allowlist import HostAllowList, host_name, parse_host_list


@pytest.mark.parametrize(
    ("authority", "name"),
    [
        ("localhost", "localhost"),
        ("LocalHost:8000", "localhost"),
        ("127.0.0.1:5555", "127.0.0.1"),
        ("[::1]:8000", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("api.example.:443", "api.example"),
    ],
)
def test_the_name_of_a_host_header(authority, name):
    assert host_name(authority) == name


def test_loopback_names_and_the_bound_address_are_allowed_by_default():
    hosts = HostAllowList.for_server("127.0.0.1")
    for allowed in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"):
        assert hosts.allows(allowed), allowed
    for refused in ("evil.example", "evil.example:8000", "localhost.evil.example", "", None):
        assert not hosts.allows(refused), refused
    assert HostAllowList.for_server("10.1.2.3").allows("10.1.2.3:8000")
    assert HostAllowList.for_server("turnout.internal").allows("turnout.internal:8000")


def test_every_interface_adds_no_name_and_the_setting_adds_its_names():
    assert HostAllowList.for_server("0.0.0.0").names == {"localhost", "127.0.0.1", "::1"}
    assert HostAllowList.for_server("::").names == {"localhost", "127.0.0.1", "::1"}
    hosts = HostAllowList.for_server("0.0.0.0", " api, Turnout.Example.com:443 ,,")
    assert hosts.allows("api:8000")
    assert hosts.allows("turnout.example.com")
    assert not hosts.allows("0.0.0.0:8000")
    assert not hosts.allows("example.com")


def test_a_star_allows_any_host():
    assert parse_host_list("*, api") == ["*", "api"]
    hosts = HostAllowList.for_server("0.0.0.0", "*")
    assert hosts.allows("anything.example")
    assert hosts.allows(None)
    assert repr(hosts) == "HostAllowList(*)"


@pytest.mark.parametrize(
    "entry", ["https://api.example.com", "api.example.com/v1", "user@api.example.com", "a b"]
)
def test_an_entry_that_is_not_a_host_name_is_refused(entry):
    from routing.errors import ConfigError

    with pytest.raises(ConfigError, match="not a host name"):
        parse_host_list(f"api, {entry}")
