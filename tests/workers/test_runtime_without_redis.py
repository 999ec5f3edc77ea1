"""A worker whose Redis is gone keeps its job for later instead of losing it."""

from routing.jobstore import JobStore, redis_client
from routing.keys import Keys
from workers.settings import WorkerSettings


def test_a_worker_that_cannot_reach_redis_retries_instead_of_losing_the_job(tmp_path):
    from ops.simulator.server import free_port
    from routing.config import parse_config
    from workers.http import HttpcoreTransport
    from workers.redaction import Redactor
    from workers.runtime import WorkerRuntime

    unreachable = redis_client(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=1)
    runtime = WorkerRuntime(
        WorkerSettings(),
        parse_config({"deployments": [{"id": "a", "provider": "ollama", "model": "m"}]}),
        store=JobStore(unreachable, Keys("t"), ttl_s=60),
        transport=HttpcoreTransport(),
        adapters={},
        redactor=Redactor(),
    )
    report = runtime.run_job("job-1")
    assert report.retry_in_s is not None
    assert 0 < report.retry_in_s < WorkerSettings().visibility_timeout_s
