"""Provider simulators: real HTTP servers speaking each provider's wire protocol, with faults
(latency, error statuses, Retry-After, hangs, malformed bodies) switchable at run time."""

from ops.simulator.faults import Faults
from ops.simulator.openai_sim import OpenAISimulator

__all__ = ["Faults", "OpenAISimulator"]
