"""Every registered simulator starts as ``turnout simulate`` makes it (no models named, the
key from TURNOUT_SIM_API_KEY) and answers its credential probe over HTTP with that key."""

import urllib.error
import urllib.request

import pytest

from ops.simulator.faults import Faults
from ops.simulator.registry import SIMULATORS, simulator_class
from ops.simulator.server import ServerThread

#: Each new provider's probe path (the older protocols are covered by their wire tests).
PROBES = {
    "huggingface": "/api/whoami-v2",
    "tgi": "/v1/models",
    "ai21": "/studio/v1/library/files",
    "replicate": "/v1/account",
    "oobabooga": "/v1/models",
}
KEY = "sim-key-0123456789abcdef"


def test_each_new_provider_has_a_simulator():
    assert set(PROBES) <= set(SIMULATORS)


@pytest.mark.parametrize("name", sorted(PROBES))
def test_a_simulator_made_as_turnout_simulate_makes_it_answers_its_probe(name):
    simulator = simulator_class(name)(
        name="cli", api_key=KEY, faults=Faults(), models=None, seed=None
    )
    assert simulator.models != ["sim-model"], "each has a model named like the real ones"
    with ServerThread(simulator) as server:
        url = f"{server.url}{PROBES[name]}"
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"Authorization": f"Bearer {KEY}"}), timeout=5
        ) as answered:
            assert answered.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert refused.value.code == 401
