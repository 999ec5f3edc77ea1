"""The fleet's lessons in the real Redis: one worker's refusal is every worker's, for one model
of one provider, with a TTL; Redis away costs the lesson, never the job."""

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from routing.config import DeploymentConfig
from routing.keys import Keys
from workers.parameter_lessons import CACHE_S, RedisParameterLessons

GPT4O = DeploymentConfig(id="a", provider="openai", model="gpt-4o")
OTHER_KEY = DeploymentConfig(id="b", provider="openai", model="GPT-4o", api_key_env="OTHER_KEY")
ON_AZURE = DeploymentConfig(id="c", provider="azure", model="gpt-4o")


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_a_lesson_reaches_another_worker_for_the_same_model_only(redis_client, namespace):
    keys = Keys(namespace)
    learner = RedisParameterLessons(redis_client, keys, ttl_s=120)
    clock = Clock()
    other_worker = RedisParameterLessons(redis_client, keys, ttl_s=120, clock=clock)
    assert other_worker.refused(OTHER_KEY) == {}
    learner.learn(GPT4O, "stop", "400 from openai: Unsupported parameter: 'stop'")
    assert learner.refused(GPT4O) == {"stop": "400 from openai: Unsupported parameter: 'stop'"}
    assert other_worker.refused(OTHER_KEY) == {}, "its cache holds for CACHE_S"
    clock.t += CACHE_S + 0.1
    assert other_worker.refused(OTHER_KEY).keys() == {"stop"}, "the same model, fleet-wide"
    assert other_worker.refused(ON_AZURE) == {}, "another provider's gpt-4o learnt nothing"
    key = keys.refused_parameters("openai", "gpt-4o")
    assert 0 < redis_client.ttl(key) <= 120


def test_redis_away_costs_the_lesson_not_the_job(namespace):
    away = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    lessons = RedisParameterLessons(away, Keys(namespace), ttl_s=60)
    assert lessons.refused(GPT4O) == {}
    lessons.learn(GPT4O, "stop", "refused")  # logged, not raised
    assert lessons.refused(GPT4O) == {"stop": "refused"}, "this process still knows it"
