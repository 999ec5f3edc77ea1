"""What a worker says at start about the routes a missing variable takes out of rotation."""

import redis

from routing.config import parse_config
from routing.fleet_status import read_route_status
from routing.keys import Keys
from routing.planning import routes_of, unusable_routes
from workers.credentials import describe_unusable, record_unusable

CONFIG = parse_config(
    {
        "deployments": [
            {"id": "main", "provider": "openai", "model": "gpt-4o", "api_key_env": "MAIN_KEY"},
            {"id": "spare", "provider": "groq", "model": "llama", "api_key_env": "SPARE_KEY"},
        ]
    }
)


def test_each_unusable_route_is_named_with_its_variable_and_the_fix():
    lines = describe_unusable(CONFIG, unusable_routes(CONFIG, lambda env: env == "SPARE_KEY"))
    assert lines == [
        "route main is out of rotation: unusable: MAIN_KEY is not set; fix: export the "
        "variable (or add it to .env) and restart the worker"
    ]


def test_a_worker_with_no_usable_route_says_its_jobs_will_fail():
    lines = describe_unusable(CONFIG, unusable_routes(CONFIG, lambda env: False))
    assert len(lines) == 3
    assert "no route of the config can be called from this worker" in lines[-1]
    assert describe_unusable(CONFIG, {}) == []


def test_the_mark_a_worker_writes_is_what_status_reads_until_one_with_the_key_starts(
    redis_url, namespace
):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    prefix = Keys(namespace).route_prefix
    routes = [r for d in CONFIG.deployments.values() for r in routes_of(d, CONFIG)]
    try:
        record_unusable(client, prefix, CONFIG, unusable_routes(CONFIG, lambda env: False))
        read = read_route_status(client, prefix, routes)
        assert [(s.route_id, s.health.state, s.health.detail) for s in read] == [
            ("main", "unusable", "unusable: MAIN_KEY is not set"),
            ("spare", "unusable", "unusable: SPARE_KEY is not set"),
        ]
        record_unusable(client, prefix, CONFIG, unusable_routes(CONFIG, lambda env: True))
        read = read_route_status(client, prefix, routes)
        assert [s.health.state for s in read] == ["unknown", "unknown"]
    finally:
        client.close()
