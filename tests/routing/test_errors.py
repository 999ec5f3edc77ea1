import pytest

from routing.errors import (
    PROVIDER_ERRORS,
    Disposition,
    ErrorClass,
    Overloaded,
    disposition,
    provider_error,
)


@pytest.mark.parametrize(
    ("error_class", "expected"),
    [
        (ErrorClass.RATE_LIMITED, Disposition.RETRY_THEN_FAILOVER),
        (ErrorClass.OVERLOADED, Disposition.RETRY_THEN_FAILOVER),
        (ErrorClass.SERVER_ERROR, Disposition.RETRY_THEN_FAILOVER),
        (ErrorClass.TIMEOUT, Disposition.RETRY_THEN_FAILOVER),
        (ErrorClass.CONNECTION, Disposition.RETRY_THEN_FAILOVER),
        (ErrorClass.AUTH, Disposition.FAILOVER),
        (ErrorClass.PERMISSION, Disposition.FAILOVER),
        (ErrorClass.MODEL_NOT_FOUND, Disposition.FAILOVER),
        (ErrorClass.CONTEXT_LENGTH, Disposition.FAILOVER),
        (ErrorClass.CONTENT_POLICY, Disposition.FAILOVER),
        (ErrorClass.INVALID_RESPONSE, Disposition.FAILOVER),
        (ErrorClass.BAD_REQUEST, Disposition.FAIL_JOB),
    ],
)
def test_each_class_has_one_disposition(error_class, expected):
    assert disposition(error_class) is expected
    assert provider_error(error_class, "x").disposition is expected


def test_every_provider_class_has_an_exception_type():
    provider_classes = set(ErrorClass) - {
        ErrorClass.DEADLINE_EXCEEDED,
        ErrorClass.NO_CANDIDATES,
        ErrorClass.WORKER_LOST,
        ErrorClass.INTERNAL,
        ErrorClass.ALL_UNAVAILABLE,
    }
    assert set(PROVIDER_ERRORS) == provider_classes


def test_the_providers_own_no_retry_verdict_wins():
    assert Overloaded("x", should_retry=False).disposition is Disposition.FAILOVER
    assert Overloaded("x", should_retry=True).disposition is Disposition.RETRY_THEN_FAILOVER
