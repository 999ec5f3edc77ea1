from workers.celery_config import (
    VISIBILITY_MARGIN_S,
    celery_config,
    max_job_deadline_s,
    reschedule_countdown_s,
)
from workers.settings import Settings


def settings(**values):
    return Settings(REDIS_URL="redis://127.0.0.1:6379/3", TURNOUT_NAMESPACE="ns1", **values)


def test_at_least_once_delivery():
    conf = celery_config(settings())
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["accept_content"] == ["json"] == conf["result_accept_content"]
    assert conf["task_serializer"] == "json"
    assert conf["result_expires"] > 0


def test_one_visibility_timeout_in_all_three_places():
    conf = celery_config(settings(TURNOUT_VISIBILITY_TIMEOUT=900))
    assert conf["visibility_timeout"] == 900
    assert conf["broker_transport_options"]["visibility_timeout"] == 900
    assert conf["result_backend_transport_options"]["visibility_timeout"] == 900


def test_the_longest_job_fits_inside_the_visibility_timeout():
    s = settings(TURNOUT_VISIBILITY_TIMEOUT=900, TURNOUT_LEASE_S=30)
    assert max_job_deadline_s(s) + s.lease_s + VISIBILITY_MARGIN_S == s.visibility_timeout_s


def test_celery_keys_and_queue_live_in_the_namespace():
    conf = celery_config(settings())
    assert conf["broker_transport_options"]["global_keyprefix"] == "ns1:"
    assert conf["task_default_queue"] == "jobs"


def test_a_reschedule_countdown_stays_far_from_the_visibility_timeout():
    s = settings(TURNOUT_VISIBILITY_TIMEOUT=900)
    assert reschedule_countdown_s(s, 30) == 30
    assert reschedule_countdown_s(s, 800) == 225, "taken in steps of a quarter"
