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
