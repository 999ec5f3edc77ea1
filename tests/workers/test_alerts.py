"""The alert sink against a real HTTP server on 127.0.0.1: delivery, retries, a dead or hung
webhook, a full queue, and the webhook URL kept out of every log line."""

import logging
import time
from typing import Any, get_args

import pytest

from ops.simulator.server import free_port
from tests.helpers import WebhookReceiver
from workers.alerts import AlertSink, AlertStats, BreakerEvent, EventName, sink_from_settings
from workers.settings import WorkerSettings

#: The shape of a Slack webhook path: the last segment is the token.
SECRET_PATH = "/services/T0TEST/B0TEST/sEcReT-t0ken-do-not-log"
FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.05}


@pytest.fixture
def webhook():
    with WebhookReceiver(SECRET_PATH) as hook:
        yield hook


@pytest.fixture
def sinks():
    """Sinks made by a test, closed after it even when it fails."""
    made: list[AlertSink] = []

    def make(url: str | None, **options: Any) -> AlertSink:
        sink = AlertSink(url, **{**FAST, **options})
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close(timeout_s=1)


def event(name: EventName = "opened", route: str = "openai-main", **fields: Any) -> BreakerEvent:
    values: dict[str, Any] = {
        "event": name,
        "route_id": route,
        "deployment": route.split("/")[0],
        "provider": "openai",
        "reason": "5 consecutive failures" if name == "opened" else "",
        "state": "open",
        "at": 1_700_000_000.5,
        "source": "worker test:1",
        **fields,
    }
    return BreakerEvent(**values)


def test_an_event_reaches_the_webhook_as_slack_compatible_json(webhook, sinks):
    sink = sinks(webhook.url)
    sink.emit(event("opened", "openai-main/OPENAI_API_KEY_2"))
    sink.close(timeout_s=5)

    assert sink.stats == AlertStats(sent=1, failed=0, dropped=0)
    [body] = webhook.bodies
    assert webhook.content_types == ["application/json"]
    assert body == {
        "text": (
            ":red_circle: turnout: openai-main/OPENAI_API_KEY_2 opened (5 consecutive failures)"
        ),
        "event": "opened",
        "route_id": "openai-main/OPENAI_API_KEY_2",
        "deployment": "openai-main",
        "provider": "openai",
        "reason": "5 consecutive failures",
        "state": "open",
        "at": 1_700_000_000.5,
        "source": "worker test:1",
    }


def test_every_event_is_one_structured_log_line_at_its_level(caplog, sinks):
    caplog.set_level(logging.INFO, logger="turnout.alerts")
    sink = sinks(None)
    sink.emit(event("opened"))
    sink.emit(event("closed", state="closed"))

    opened, closed = (r for r in caplog.records if r.name == "turnout.alerts")
    assert opened.levelno == logging.WARNING
    assert opened.getMessage() == event("opened").text()
    assert opened.alert == event("opened").payload()
    assert closed.levelno == logging.INFO
    assert (
        closed.getMessage() == ":large_green_circle: turnout: openai-main closed: traffic returns"
    )
    assert sink.stats == AlertStats()  # no webhook: nothing queued, no thread


def test_server_errors_are_retried_until_delivered_once(webhook, sinks):
    webhook.statuses = [500, 503]
    sink = sinks(webhook.url)
    sink.emit(event())
    sink.close(timeout_s=5)

    assert len(webhook.bodies) == 3, "two 5xx replies, then the 200"
    assert sink.stats == AlertStats(sent=1, failed=0, dropped=0)


def test_retry_after_is_honoured(webhook, sinks):
    webhook.statuses = [429]
    webhook.retry_after = "0.4"
    sink = sinks(webhook.url, backoff_base_s=0, backoff_max_s=0)
    started = time.monotonic()
    sink.emit(event())
    sink.close(timeout_s=5)

    assert sink.stats.sent == 1
    assert time.monotonic() - started >= 0.4


def test_a_refusal_is_not_retried(webhook, sinks, caplog):
    webhook.statuses = [404]
    sink = sinks(webhook.url)
    sink.emit(event())
    sink.close(timeout_s=5)

    assert len(webhook.bodies) == 1
    assert sink.stats == AlertStats(sent=0, failed=1, dropped=0)
    assert "alert webhook failed (HTTP 404) after 1 try; event opened for openai-main dropped" in [
        r.getMessage() for r in caplog.records
    ]


def test_a_dead_webhook_never_slows_emit(sinks, caplog):
    url = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"  # nobody listens there
    sink = sinks(url, attempts=3)
    took = []
    for i in range(20):
        started = time.perf_counter()
        sink.emit(event(route=f"route-{i}"))
        took.append(time.perf_counter() - started)
    sink.close(timeout_s=5)

    assert max(took) < 0.05, f"emit took up to {max(took) * 1000:.1f} ms"
    assert sink.stats == AlertStats(sent=0, failed=20, dropped=0)
    assert (
        "alert webhook failed (ConnectError) after 3 tries; event opened for route-0 dropped"
        in [r.getMessage() for r in caplog.records]
    )


def test_a_hung_webhook_blocks_neither_emit_nor_close(webhook, sinks):
    webhook.gate.clear()  # it reads the request and never answers
    sink = sinks(webhook.url, timeout_s=10)
    started = time.perf_counter()
    sink.emit(event())
    assert time.perf_counter() - started < 0.05
    webhook.wait_for(1)
    sink.emit(event("half_open"))  # queued behind the hung one

    started = time.monotonic()
    sink.close(timeout_s=0.5)
    assert time.monotonic() - started < 0.8
    assert sink.stats.dropped == 1, "the queued event was given up"
    assert sink.stats.sent == 0
    webhook.gate.set()


def test_a_full_queue_drops_the_oldest_and_counts_it(webhook, sinks, caplog):
    webhook.gate.clear()
    sink = sinks(webhook.url, max_queue=2)
    sink.emit(event(route="first"))
    webhook.wait_for(1)  # in flight, the queue empty behind it
    for name in ("r1", "r2", "r3", "r4"):
        sink.emit(event(route=name))
    assert sink.stats.dropped == 2

    webhook.gate.set()
    sink.close(timeout_s=5)
    assert [body["route_id"] for body in webhook.bodies] == ["first", "r3", "r4"]
    assert sink.stats == AlertStats(sent=3, failed=0, dropped=2)
    full = [r for r in caplog.records if "alert queue full" in r.getMessage()]
    assert len(full) == 1, "one warning per burst, not one per drop"


def test_the_webhook_url_is_in_no_log_record(webhook, sinks, caplog):
    caplog.set_level(logging.DEBUG)  # httpx names every request's URL at INFO
    webhook.statuses = [200, 500, 500, 500, 403]
    sink = sinks(webhook.url)
    dead = sinks(f"http://127.0.0.1:{free_port()}{SECRET_PATH}")
    for _ in range(3):
        sink.emit(event())
    dead.emit(event())
    sink.close(timeout_s=5)
    dead.close(timeout_s=5)

    assert sink.stats == AlertStats(sent=1, failed=2, dropped=0)
    assert dead.stats.failed == 1
    assert any(r.name == "httpx" for r in caplog.records), "httpx did log its requests"
    token = SECRET_PATH.rsplit("/", 1)[1]
    for record in caplog.records:
        rendered = record.getMessage() + repr(record.__dict__)
        assert token not in rendered, record
    assert token not in repr(sink)


def test_a_bad_url_is_refused_without_echoing_it():
    with pytest.raises(ValueError, match="http") as refused:
        AlertSink("hooks.slack.com/services/T0/B0/sEcReT-t0ken")
    assert "sEcReT" not in str(refused.value)


@pytest.mark.parametrize("name", get_args(EventName))
def test_each_event_is_one_line_naming_the_route(name):
    line = event(name, "groq-backup/GROQ_API_KEY_2", reason="upstream said:\n  503\tgone").text()
    assert "\n" not in line
    assert line.startswith(":")
    assert "turnout: groq-backup/GROQ_API_KEY_2 " in line
    assert "(upstream said: 503 gone)" in line


def test_long_reasons_are_clipped_and_keys_in_them_are_redacted(webhook, sinks):
    reason = "auth: Incorrect API key provided: sk-live-abcdefghijklmnop " + "x" * 500
    assert len(event(reason=reason).reason) == 300
    sink = sinks(webhook.url)
    sink.emit(event("credential_invalid", reason=reason))
    sink.close(timeout_s=5)
    [body] = webhook.bodies
    assert "sk-live" not in body["text"]
    assert "sk-live" not in body["reason"]


def test_sink_from_settings_posts_to_the_configured_webhook(webhook, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TURNOUT_ALERT_WEBHOOK", webhook.url)
    sink = sink_from_settings(WorkerSettings())
    try:
        sink.emit(event("failback", state="closed"))
    finally:
        sink.close(timeout_s=5)
    assert [body["event"] for body in webhook.bodies] == ["failback"]

    monkeypatch.setenv("TURNOUT_ALERT_WEBHOOK", " ")
    assert not sink_from_settings(WorkerSettings()).webhook_set


def test_sink_from_settings_logs_only_when_the_url_is_not_http(monkeypatch, tmp_path, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TURNOUT_ALERT_WEBHOOK", "slack-token-not-a-url")
    sink = sink_from_settings(WorkerSettings())
    assert not sink.webhook_set
    assert all("slack-token" not in r.getMessage() for r in caplog.records)
