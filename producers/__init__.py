"""Producers: what callers import or run to hand completion jobs to turnout.

    from producers import Client
    result = Client().complete("Hello")

Lives here: ``Client`` (sync and asyncio), the batch runner, ``turnout serve`` (the OpenAI
compatible HTTP front), the producers' CLI commands and ``ProducerSettings``. A producer
validates input and writes jobs to Redis; it never holds a provider key (its settings have no
field for one).

May import: routing (the core). Never workers (a producer loads no worker code, not even to
publish) and never ops: the import-linter contract in pyproject.toml checks both.
"""

from producers.client import AsyncJobHandle, Client, JobHandle
from routing.errors import (
    ConfigError,
    InvalidRequest,
    JobFailed,
    JobNotFound,
    JobTimeout,
    RedisUnavailable,
    SubmitError,
    TurnoutError,
)
from routing.models import CompletionRequest, CompletionResult, Message, RoutingPolicy

__all__ = [
    "AsyncJobHandle",
    "Client",
    "CompletionRequest",
    "CompletionResult",
    "ConfigError",
    "InvalidRequest",
    "JobFailed",
    "JobHandle",
    "JobNotFound",
    "JobTimeout",
    "Message",
    "RedisUnavailable",
    "RoutingPolicy",
    "SubmitError",
    "TurnoutError",
]
