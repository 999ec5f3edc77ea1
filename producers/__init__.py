"""Producers: what callers import or run to hand completion jobs to turnout.

from producers import Client
result = Client().complete("Hello")
"""

from producers.client import AsyncJobHandle, Client, JobHandle, SubmitError
from routing.errors import ConfigError, InvalidRequest, JobFailed, JobTimeout
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
    "JobTimeout",
    "Message",
    "RoutingPolicy",
    "SubmitError",
]
