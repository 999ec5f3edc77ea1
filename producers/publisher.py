"""How a producer sends a job's message: ``turnout.run_job`` with the job id, on broker
connections the producer owns, so closing the producer really closes them.

Celery's own publishing path keeps its connections in kombu's process-wide pools, keyed by the
broker URL: two clients on one Redis share them, and nothing a client does can close them
without breaking the other. A ``JobPublisher`` holds a pool of its own instead (kombu's
``Connection.Pool`` and ``ProducerPool``, sized as Celery sizes its own: ``broker_pool_limit``)
and hands Celery a producer from it for each message.

Each message is sent once, without kombu's own publish retry (``retry=False``): kombu would
send it again after a connection that dropped before the reply, though the first copy may have
reached the queue. ``Client`` decides what a failed send means instead: it takes the job back
before it sends another message (producers.client, ``_sent``).

On RabbitMQ each connection asks for publisher confirms (routing.celery_config): ``publish``
returns once the broker has the message, and raises when it refused it.

Each message is sent with ``ignore_result``: the job record holds the outcome, and without it
Celery's Redis result backend subscribes the producer to a result channel per job that nothing
ever publishes to (one subscription more for every job, held as long as the process lives).
"""

from __future__ import annotations

import threading

from celery import Celery
from kombu.pools import ProducerPool

from routing.celery_config import PRODUCER_TRANSPORT_OPTIONS, RUN_JOB_TASK
from routing.settings import is_amqp_url


def _is_amqp(app: Celery) -> bool:
    return is_amqp_url(str(app.conf.broker_url))


class JobPublisher:
    """Sends run_job messages, to ``queue`` unless told another (a lane's, routing.lanes);
    thread-safe; ``close`` drops every connection."""

    def __init__(self, app: Celery, queue: str) -> None:
        self._app = app
        self._queue = queue
        limit = app.conf.broker_pool_limit
        options = PRODUCER_TRANSPORT_OPTIONS if _is_amqp(app) else {}
        connection = app.connection_for_write(transport_options=options)
        self._connections = connection.Pool(limit=limit)
        self._producers = ProducerPool(self._connections, limit=limit)
        self._closed = False
        self._lock = threading.Lock()

    def publish(self, job_id: str, queue: str | None = None) -> None:
        """One message carrying the job id only (its argsrepr too, for Flower)."""
        with self._producers.acquire(block=True) as producer:
            self._app.send_task(
                RUN_JOB_TASK,
                args=[job_id],
                task_id=job_id,
                queue=queue or self._queue,
                argsrepr=repr(job_id),
                ignore_result=True,
                producer=producer,
                retry=False,
            )

    def close(self) -> None:
        """Close every broker connection, idle or in use; a second call does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._producers.force_close_all()
        self._connections.force_close_all()
