"""``turnout keys list``'s rows: every stored value (live, previous, revoked) and every key the
config names, with its usage, by id and mask only."""

from __future__ import annotations

from ops.key_commands import key_rows
from routing.key_usage import KeyUsage, StoredKeyInfo


def test_rows_join_the_store_the_usage_and_the_config():
    stored = [
        StoredKeyInfo(
            "openai-a",
            2,
            "…bbbb",
            set_at=1_000_000,
            revoked_at=None,
            kid="0123456789abcdef",
            previous_slot=1,
            previous_masked="…aaaa",
            previous_until=1_300_000,
        ),
        StoredKeyInfo("old", None, "", set_at=None, revoked_at=900_000),
    ]
    usage = [
        KeyUsage("store:openai-a@2", "…bbbb", calls=5, calls_today=3, last_used=1_100_000),
        KeyUsage("store:openai-a@1", "…aaaa", calls=7, errors={"auth": 2}, last_error="auth"),
        KeyUsage("env:OPENAI_API_KEY", "…cccc", calls=9, cost_usd=0.25),
        KeyUsage("store:gone@4", "…dddd", calls=1),
    ]
    used_by = {"store:openai-a": ["d"], "env:OPENAI_API_KEY": ["d"], "env:UNUSED_KEY": ["e"]}
    rows = {r["key"]: r for r in key_rows(stored, usage, used_by, now_ms=1_200_000)}
    live = rows["store:openai-a@2"]
    assert (live["state"], live["masked"], live["calls"], live["calls_today"]) == (
        "live",
        "…bbbb",
        5,
        3,
    )
    assert live["age_s"] == 200.0
    assert live["last_used"] == 1100.0
    previous = rows["store:openai-a@1"]
    assert (previous["state"], previous["until"], previous["auth_failing"]) == (
        "previous",
        1300.0,
        True,
    )
    assert previous["errors"] == {"auth": 2}
    assert rows["store:old"]["state"] == "revoked"
    env = rows["env:OPENAI_API_KEY"]
    assert (env["source"], env["masked"], env["cost_usd"]) == ("environment", "…cccc", 0.25)
    assert rows["env:UNUSED_KEY"]["calls"] == 0
    assert rows["store:gone@4"]["state"] == "retired"
