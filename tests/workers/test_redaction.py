import logging
import secrets

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


# --- no 12 characters of a key survive, wherever the body was cut ----------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from workers.redaction import FRAGMENT_RUN  # noqa: E402

_KEY_CHARS = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_BODY_CHARS = st.characters(codec="utf-8")  # no lone surrogates: bodies are bytes


def _runs_of(secret: str) -> set[str]:
    return {secret[i : i + FRAGMENT_RUN] for i in range(len(secret) - FRAGMENT_RUN + 1)}


def _survivor(secret: str, text: str) -> str | None:
    return next((run for run in _runs_of(secret) if run in text), None)


@settings(max_examples=300, deadline=None)
@given(
    key=st.text(_KEY_CHARS, min_size=FRAGMENT_RUN, max_size=80),
    offset=st.integers(0, 700),
    filler=st.sampled_from(["x", "é", " ", "<p>", "\n"]),
    after=st.text(_BODY_CHARS, max_size=200),
)
def test_no_run_of_a_key_survives_a_body_cut_anywhere(key, offset, filler, after):
    """A non-JSON error body echoing the key at any offset (most often across the cut at 500
    characters), read as every adapter reads one (``snippet``: decoded, cut, marked), then
    redacted as the worker stores it."""
    from workers.providers.reading import snippet

    body = ((filler * offset)[:offset] + key + after).encode()
    stored = Redactor([key])(snippet(body))
    assert _survivor(key, stored) is None, stored


@settings(max_examples=300, deadline=None)
@given(
    key=st.text(_KEY_CHARS, min_size=FRAGMENT_RUN, max_size=80),
    data=st.data(),
    before=st.text(_BODY_CHARS, max_size=100),
)
def test_any_piece_of_a_key_of_twelve_or_more_is_masked(key, data, before):
    """A provider echoing the key's head, its tail ("...the last 12") or a middle piece."""
    start = data.draw(st.integers(0, len(key) - FRAGMENT_RUN))
    end = data.draw(st.integers(start + FRAGMENT_RUN, len(key)))
    stored = Redactor([key])(f"{before} {key[start:end]} and more")
    assert _survivor(key, stored) is None, stored


def test_the_tail_of_a_key_a_provider_echoes_is_masked():
    redact = Redactor([KEY])
    assert KEY[-12:] not in redact(f"key ending in {KEY[-12:]} is not valid")
    assert REDACTED in redact(f"key ending in {KEY[-12:]} is not valid")


def test_a_short_key_is_masked_after_a_credential_word_and_only_there():
    redact = Redactor(["abc123"])
    assert redact("invalid api key: abc123.") == f"invalid api key: {REDACTED}."
    assert redact("Token 'abc123' rejected") == f"Token '{REDACTED}' rejected"
    assert redact("model abc123 is loading") == "model abc123 is loading"


def test_a_body_longer_than_a_message_is_marked_as_cut():
    from workers.providers.reading import MAX_ERROR_MESSAGE, snippet

    cut = snippet(b"y" * (MAX_ERROR_MESSAGE - 10) + KEY.encode())
    assert cut.endswith("…")
    assert len(cut) == MAX_ERROR_MESSAGE
    assert KEY[:9] in cut
    assert KEY[:9] not in Redactor([KEY])(cut), "a head of 8 or more at a cut end is masked"


def test_a_secret_minted_at_run_time_is_masked_by_every_redactor_of_the_process():
    from workers.redaction import remember_minted_secret

    made_before = Redactor()
    token = f"ya29.{secrets.token_hex(20)}"  # nothing another test minted is part of it
    assert token in made_before(f"sent {token}")
    remember_minted_secret(token)
    assert token not in made_before(f"sent {token}"), "a redactor made before learns it too"
    assert token[:14] not in Redactor()(f"cut: {token[:14]}")


def test_escaped_echoes_of_a_secret_are_masked_whole():
    import json as json_module
    from urllib.parse import quote

    aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY+q="
    redact = Redactor([aws_secret])
    escaped = json_module.dumps({"detail": aws_secret}).replace("/", "\\/")
    for echo in (escaped, quote(aws_secret, safe=""), json_module.dumps(aws_secret)):
        stored = redact(f"proxy said {echo}")
        assert not any(aws_secret[i : i + 8] in stored for i in range(len(aws_secret) - 7)), stored


def test_a_webhook_urls_scheme_and_host_do_not_mask_other_urls():
    redact = Redactor(["https://api.mycorp.example/hooks/T0123/B0456/sEcReTtOkEn99"])
    assert redact("https://api.openai.com timed out") == "https://api.openai.com timed out"
    assert "sEcReTtOkEn99" not in redact("posted to /hooks/T0123/B0456/sEcReTtOkEn99 failed")


def test_minted_secrets_replace_each_other_instead_of_piling_up():
    from workers.redaction import MINTED_KEPT, remember_minted_secret

    redact = Redactor(["configured-secret-0123456789"])
    for _ in range(MINTED_KEPT * 3):
        remember_minted_secret(f"ya29.{secrets.token_hex(20)}")
        redact("anything")
    assert len(redact._known.secrets) <= 1 + 4 * MINTED_KEPT  # each in at most 4 forms
