import logging

from workers.redaction import REDACTED, RedactingFilter, Redactor, install_log_redaction

KEY = "sk-canary-0123456789abcdef"


def test_known_secrets_are_replaced_wherever_they_appear():
    redact = Redactor([KEY, "short"])
    assert redact(f"sent {KEY} twice: {KEY}") == f"sent {REDACTED} twice: {REDACTED}"
    assert redact("a short word") == "a short word", "tiny values are not treated as secrets"


def test_keys_a_provider_echoes_back_are_masked_even_when_unknown():
    redact = Redactor()
    echoed = "Incorrect API key provided: sk-can*************cdef. You can find..."
    assert "sk-can" not in redact(echoed)
    assert redact("Authorization: Bearer abc.def-123") == "Authorization: Bearer [redacted]"


def test_log_records_and_tracebacks_are_scrubbed(caplog):
    logger = logging.getLogger("turnout.test.redaction")
    records: list[logging.LogRecord] = []

    class Collecting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collecting()
    logger.addHandler(handler)
    install_log_redaction(Redactor([KEY]), logger)
    try:
        try:
            raise RuntimeError(f"provider said {KEY}")
        except RuntimeError:
            logger.exception("call with %s failed", KEY)
    finally:
        logger.removeHandler(handler)
    (record,) = records
    formatted = logging.Formatter().format(record)
    assert KEY not in formatted
    assert formatted.count(REDACTED) == 2
    assert any(isinstance(f, RedactingFilter) for f in handler.filters)


def test_a_secret_cut_in_half_by_clipping_loses_its_head_too():
    from workers.providers.reading import clip

    redact = Redactor([KEY])
    clipped = clip("x" * 480 + " token: " + KEY)
    assert KEY[:8] in clipped
    redacted = redact(clipped)
    assert KEY[:8] not in redacted
    assert redacted.endswith(REDACTED + "…")


def test_aws_session_tokens_and_keys_with_stray_whitespace_are_scrubbed():
    redact = Redactor([KEY + "\n"])
    assert KEY not in redact(f"sent {KEY}")
    assert "abc123" not in redact("x-amz-security-token:abc123 host:bedrock")


def test_every_secret_setting_is_known(monkeypatch, tmp_path):
    from routing.config import parse_config
    from workers.redaction import secrets_of
    from workers.settings import WorkerSettings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-0123456789")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "aws-session-token-0123456789")
    monkeypatch.setenv("MY_OTHER_KEY", "custom-key-0123456789")
    config = parse_config(
        {
            "deployments": [
                {"id": "a", "provider": "openai", "model": "m", "api_key_env": "MY_OTHER_KEY"}
            ]
        }
    )
    found = secrets_of(WorkerSettings(), config)
    for secret in (
        "aws-secret-0123456789",
        "aws-session-token-0123456789",
        "custom-key-0123456789",
    ):
        assert secret in found


def test_the_alert_webhook_and_its_token_path_are_secrets(monkeypatch, tmp_path):
    from workers.redaction import secrets_of
    from workers.settings import WorkerSettings

    monkeypatch.chdir(tmp_path)
    url = "https://hooks.slack.com/services/T0/B0/sEcReT-t0ken"
    monkeypatch.setenv("TURNOUT_ALERT_WEBHOOK", url)
    redact = Redactor(secrets_of(WorkerSettings(), None))
    assert redact(f"POST {url} failed") == f"POST {REDACTED} failed"
    assert "sEcReT" not in redact("POST /services/T0/B0/sEcReT-t0ken HTTP/1.1")
