import time
from types import SimpleNamespace

from routing.celery_config import (
    CONTROL_PICKUP_S,
    HEALTH_CHECK_TASK,
    RECONCILE_TASK,
    VISIBILITY_MARGIN_S,
    celery_config,
    max_job_deadline_s,
    reschedule_countdown_s,
)
from routing.settings import CoreSettings


def settings(**values):
    return CoreSettings(REDIS_URL="redis://127.0.0.1:6379/3", TURNOUT_NAMESPACE="ns1", **values)


def test_at_least_once_delivery():
    conf = celery_config(settings())
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["accept_content"] == ["json"] == conf["result_accept_content"]
    assert conf["task_serializer"] == "json"


def test_no_result_backend_since_no_task_stores_a_result():
    conf = celery_config(settings())
    assert conf["task_ignore_result"] is True
    assert "result_backend" not in conf
    assert conf["result_expires"] is None, "else beat schedules celery.backend_cleanup"


def test_one_visibility_timeout_in_both_places():
    conf = celery_config(settings(TURNOUT_VISIBILITY_TIMEOUT=900))
    assert conf["visibility_timeout"] == 900
    assert conf["broker_transport_options"]["visibility_timeout"] == 900


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


def test_beat_reconciles_and_ticks_the_health_checks_and_drops_stale_ticks():
    schedule = celery_config(settings(TURNOUT_HEALTH_TICK="0.5"))["beat_schedule"]
    by_task = {entry["task"]: entry for entry in schedule.values()}
    assert set(by_task) == {RECONCILE_TASK, HEALTH_CHECK_TASK}
    assert by_task[HEALTH_CHECK_TASK]["schedule"] == 0.5
    # stale once the next tick is due, plus what an idle worker takes to look at its queue
    assert by_task[HEALTH_CHECK_TASK]["options"] == {"expires": 0.5 + CONTROL_PICKUP_S}
    assert celery_config(settings())["beat_schedule"]["turnout-health-check"]["schedule"] == 5


def test_beats_tasks_have_their_own_queue_that_every_worker_consumes():
    from routing.celery_config import create_app

    app = create_app(settings())
    bulk = [f"bulk-{slot}" for slot in range(8)]
    assert list(app.amqp.queues) == ["jobs", "control", *bulk], "a worker consumes them all"
    route = app.amqp.router.route
    assert route({}, HEALTH_CHECK_TASK)["queue"].name == "control"
    assert route({}, RECONCILE_TASK)["queue"].name == "control"
    assert route({}, "turnout.run_job")["queue"].name == "jobs"


def test_task_events_are_off_unless_turned_on():
    off = celery_config(settings())
    assert off["worker_send_task_events"] is False
    assert off["task_send_sent_event"] is False
    on = celery_config(settings(TURNOUT_TASK_EVENTS="1"))
    assert on["worker_send_task_events"] is True
    assert on["task_send_sent_event"] is True


# --- the task-calling event (workers.tasks), as Celery's event state and so Flower read it ------


def test_a_call_shows_as_the_calling_state_with_its_deployment_and_attempt():
    from celery.events.state import State

    from routing.celery_config import RUN_JOB_TASK
    from workers.execution import CallStarted
    from workers.tasks import CALLING_EVENT, calling_fields

    state = State()
    now = time.time()

    def event(type_, **fields):
        common = {"uuid": "job-1", "hostname": "w1@host", "clock": 1, "local_received": now}
        state.event({"type": type_, "timestamp": now, **common, **fields})

    event("task-received", name=RUN_JOB_TASK, args="'job-1'", kwargs="{}")
    event("task-started")
    event(CALLING_EVENT, **calling_fields(CallStarted("openai-main", 2, 1)))
    task = state.tasks["job-1"]
    assert task.state == "CALLING"
    assert (task.deployment, task.attempt, task.run) == ("openai-main", 2, 1)
    shown = task.as_dict()  # what Flower's API answers
    assert shown["name"] == RUN_JOB_TASK
    assert shown["result"] == "calling openai-main: attempt 2, run 1"

    event("task-succeeded", result="{'job_id': 'job-1', 'state': 'succeeded'}", runtime=0.5)
    assert task.state == "SUCCESS"
    assert task.result == "{'job_id': 'job-1', 'state': 'succeeded'}"


def fake_task(*, events: bool, send_event):
    conf = SimpleNamespace(worker_send_task_events=events)
    return SimpleNamespace(
        app=SimpleNamespace(conf=conf), send_event=send_event, request=SimpleNamespace(id="job-1")
    )


def test_calls_are_announced_only_when_task_events_are_on():
    from workers.execution import CallStarted
    from workers.tasks import CALLING_EVENT, call_announcer

    call = CallStarted("openai-main", 1, 1)
    sent = []

    def send_event(type_, **fields):
        sent.append((type_, fields))

    call_announcer(fake_task(events=False, send_event=send_event))(call)
    assert sent == []
    call_announcer(fake_task(events=True, send_event=send_event))(call)
    assert [(type_, fields["deployment"], fields["attempt"]) for type_, fields in sent] == [
        (CALLING_EVENT, "openai-main", 1)
    ]


def test_an_announcement_that_cannot_go_out_never_fails_the_job():
    from workers.execution import CallStarted
    from workers.tasks import call_announcer

    def broker_down(type_, **fields):
        raise ConnectionError("Redis is away")

    call_announcer(fake_task(events=True, send_event=broker_down))(CallStarted("openai-main", 1, 1))


def test_in_a_worker_calls_go_out_through_its_own_event_dispatcher(monkeypatch):
    """The dispatcher that -E, the setting and Flower's enable_events switch: it decides."""
    from workers import tasks
    from workers.execution import CallStarted

    through_worker = []
    dispatcher = SimpleNamespace(send=lambda type_, **fields: through_worker.append(fields))
    monkeypatch.setattr(tasks._Worker, "consumer", SimpleNamespace(event_dispatcher=dispatcher))

    def not_this_way(type_, **fields):
        raise AssertionError("Task.send_event builds a dispatcher per call")

    tasks.call_announcer(fake_task(events=False, send_event=not_this_way))(
        CallStarted("openai-main", 3, 2)
    )
    assert through_worker == [
        {"uuid": "job-1", **tasks.calling_fields(CallStarted("openai-main", 3, 2))}
    ]
