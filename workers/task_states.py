"""What a job's Celery task ends or waits as, so Flower's states say what the job did.

Celery's event state (and so Flower) knows a task by its events: ``task-succeeded`` is SUCCESS,
``task-failed`` FAILURE, ``task-retried`` RETRY, and a ``task-*`` name it does not know is a state
named after it. So:

- a job that ends ``failed`` ends its task with ``JobFailedError``, after its record is written:
  FAILURE, counted by Flower's Failed counter and filter. The message is still acknowledged
  (acks_late with ``acks_on_failure_or_timeout``, Celery's default: only a lost worker's message
  goes back), and ``run_job`` lists it in ``throws``, so the worker logs one line, no traceback;
- a job rescheduled because every route is dark raises Celery's retry with a ``RouteWait``, and
  its ``JobRequest`` sends ``task-waiting`` where Celery would send ``task-retried``: WAITING,
  with the routes and until when. A custom state outranks the RECEIVED and STARTED events that
  follow (celery.states.PRECEDENCE), where RETRY would lose to the next message's RECEIVED, so it
  shows until the job calls again (CALLING) or ends.

Every field is a route id, an error class, a time or a count: never a prompt or a key.
"""

from __future__ import annotations

import time
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from celery.worker.request import Request

#: Sent instead of ``task-retried`` when a job waits for its routes: Flower shows ``WAITING``.
WAITING_EVENT = "task-waiting"


class JobFailedError(Exception):
    """The job ended ``failed`` (its record says why): what its Celery task ends with.

    Its arguments are the job id and the error class only, strings, so it pickles and prints
    the same anywhere; the job's error message stays in the job record."""

    def __init__(self, job_id: str, error_class: str) -> None:
        super().__init__(job_id, error_class)
        self.job_id = job_id
        self.error_class = error_class

    def __str__(self) -> str:
        return f"job {self.job_id} failed: {self.error_class}"


class RouteWait(Exception):
    """Why a job's task is retried: every route it may use is dark until ``until`` (epoch s)."""

    def __init__(self, route_ids: tuple[str, ...], until: float) -> None:
        super().__init__(list(route_ids), until)
        self.route_ids = tuple(route_ids)
        self.until = until

    def __str__(self) -> str:
        stamp = time.strftime("%H:%M:%SZ", time.gmtime(self.until))
        return f"waiting for {', '.join(self.route_ids)} until {stamp}"

    def event_fields(self) -> dict[str, Any]:
        """The fields of a ``task-waiting`` event. Flower's pages and API show Celery's own task
        fields only, so the summary rides in ``result`` too, as ``task-calling``'s does."""
        return {"waiting_for": list(self.route_ids), "until": self.until, "result": str(self)}


class JobRequest(Request):  # type: ignore[misc]  # celery.worker is untyped
    """``run_job``'s worker-side request: Celery's, with the two events above told apart."""

    _failed_with: JobFailedError | None = None

    def on_retry(self, exc_info: Any) -> None:
        wait = getattr(_raised(exc_info), "exc", None)  # Retry(exc=...)
        if not isinstance(wait, RouteWait):
            super().on_retry(exc_info)  # a lease held elsewhere, Redis away: a plain RETRY
            return
        if self.task.acks_late:
            self.acknowledge()  # as Celery's own: the retry's message is already published
        self.send_event(WAITING_EVENT, **wait.event_fields())

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        exc = _raised(exc_info)
        self._failed_with = exc if isinstance(exc, JobFailedError) else None
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def send_event(self, type: str, **fields: Any) -> None:
        failed = self._failed_with
        if type == "task-failed" and failed is not None:
            # An expected end, not a crash: no traceback, and the summary replaces the last
            # call's ``result`` in Flower.
            fields.update(traceback="", result=str(failed))
        super().send_event(type, **fields)


def _raised(exc_info: Any) -> BaseException:
    """The exception a task raised, as the pool hands it back (maybe wrapped with its traceback)."""
    exc: BaseException = exc_info.exception
    return exc.exc if isinstance(exc, ExceptionWithTraceback) else exc
