"""What every protocol's adapter promises against its simulator, as one table a row a protocol
and case: each injected failure status has its error class (and Retry-After where the protocol
sends one), a malformed body is an invalid response, a hung reply is a timeout, and refused
credentials are auth for the call and the probe while the right ones pass the probe.

Each protocol's key, request and adapter factory are those of its own wire module
(tests/providers/test_<protocol>_wire.py), which keeps the tests only that protocol has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ops.simulator.ai21_sim import AI21Simulator
from ops.simulator.anthropic_sim import AnthropicSimulator
from ops.simulator.azure_sim import AzureSimulator
from ops.simulator.bedrock_sim import BedrockSimulator
from ops.simulator.cohere_sim import CohereSimulator
from ops.simulator.gemini_sim import GeminiSimulator
from ops.simulator.huggingface_sim import HuggingFaceSimulator, TGISimulator
from ops.simulator.ollama_sim import OllamaSimulator
from ops.simulator.oobabooga_sim import OobaboogaSimulator
from ops.simulator.openai_sim import OpenAISimulator
from ops.simulator.replicate_sim import ReplicateSimulator
from ops.simulator.server import ServerThread
from ops.simulator.vertex_sim import VertexSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers import (
    test_ai21_wire,
    test_anthropic_wire,
    test_azure_wire,
    test_bedrock_wire,
    test_cohere_wire,
    test_gemini_wire,
    test_huggingface_wire,
    test_ollama_wire,
    test_oobabooga_wire,
    test_openai_wire,
    test_replicate_wire,
    test_vertex_wire,
)
from tests.providers.harness import (
    ServiceAccountKey,
    adapter_for,
    complete,
    probe,
    serving,
    set_faults,
    settings,
)
from workers.providers.base import ProviderAdapter

E = ErrorClass


@dataclass(frozen=True)
class Reach:
    """A protocol's simulator, running, and adapters to it."""

    server: ServerThread
    adapter: ProviderAdapter  # with the credentials the simulator accepts
    request: CompletionRequest
    refused: dict[str, ProviderAdapter] = field(default_factory=dict)  # by what is wrong


@contextmanager
def openai(tmp_path: Path) -> Iterator[Reach]:
    wire = test_openai_wire
    with serving(OpenAISimulator(name="oai", api_key=wire.KEY)) as server:
        wrong = adapter_for(
            "openai",
            "gpt-test",
            settings(OPENAI_API_KEY="sk-wrong-0123456789abcdef"),
            base_url=f"{server.url}/v1",
        )
        yield Reach(server, wire.adapter(server), wire.REQUEST, {"wrong key": wrong})


@contextmanager
def anthropic(tmp_path: Path) -> Iterator[Reach]:
    wire = test_anthropic_wire
    simulator = AnthropicSimulator(name="ant", api_key=wire.KEY, models=["claude-a", "claude-b"])
    with serving(simulator) as server:
        wrong = wire.adapter(server, key="fake-anthropic-wrong-key-0123")
        yield Reach(server, wire.adapter(server), wire.REQUEST, {"wrong key": wrong})


@contextmanager
def cohere(tmp_path: Path) -> Iterator[Reach]:
    wire = test_cohere_wire
    with serving(CohereSimulator(name="co", api_key=wire.KEY)) as server:
        wrong = wire.adapter(server, key="co-wrong-0123456789abcdef")
        yield Reach(server, wire.adapter(server), wire.REQUEST, {"wrong key": wrong})


def azure(version: str) -> Callable[[Path], AbstractContextManager[Reach]]:
    @contextmanager
    def reach(tmp_path: Path) -> Iterator[Reach]:
        wire = test_azure_wire
        simulator = AzureSimulator(name="az", api_key=wire.KEY, models=[wire.DEPLOYMENT])
        with serving(simulator) as server:
            wrong = wire.adapter(server, version, key="azure-wrong-key-0123456789")
            yield Reach(server, wire.adapter(server, version), wire.REQUEST, {"wrong key": wrong})

    return reach


@contextmanager
def bedrock(tmp_path: Path) -> Iterator[Reach]:
    wire = test_bedrock_wire
    simulator = BedrockSimulator(
        name="bdr", api_key=f"{wire.KEY_ID}:{wire.SECRET}", region="us-east-1"
    )
    with serving(simulator) as server:
        wrong = wire.adapter(server, secret="not/the+secret/0123456789abcdefghijklmn")
        yield Reach(server, wire.adapter(server), wire.REQUEST, {"wrong secret": wrong})


@contextmanager
def gemini(tmp_path: Path) -> Iterator[Reach]:
    wire = test_gemini_wire
    simulator = GeminiSimulator(
        name="gem", api_key=wire.KEY, models=["gemini-2.5-flash", "gemini-2.5-pro"]
    )
    with serving(simulator) as server:
        refused = {
            "wrong key": wire.adapter(server, key="AIza-wrong-0123456789"),
            "no key": wire.adapter(server, key=None),
        }
        yield Reach(server, wire.adapter(server), wire.REQUEST, refused)


@contextmanager
def ollama(tmp_path: Path) -> Iterator[Reach]:
    """Ollama on a laptop: no key at all."""
    wire = test_ollama_wire
    simulator = OllamaSimulator(name="ol", models=["llama3.2:latest", "qwen3:8b"])
    with serving(simulator) as server:
        yield Reach(server, wire.adapter(server), wire.REQUEST)


@contextmanager
def ollama_com(tmp_path: Path) -> Iterator[Reach]:
    """ollama.com: the same API behind a bearer key."""
    wire, model = test_ollama_wire, "gpt-oss:120b"
    with serving(OllamaSimulator(name="cloud", api_key=wire.KEY, models=[model])) as server:
        refused = {
            "wrong key": wire.adapter(server, model, OLLAMA_API_KEY="ol-wrong-0123456789abcdef"),
            "no key": wire.adapter(server, model),
        }
        keyed = wire.adapter(server, model, OLLAMA_API_KEY=wire.KEY)
        yield Reach(server, keyed, wire.REQUEST, refused)


@contextmanager
def vertex(tmp_path: Path) -> Iterator[Reach]:
    """google-auth's real service-account flow against the simulator's token endpoint."""
    wire, trusted = test_vertex_wire, ServiceAccountKey.generate()
    simulator = VertexSimulator(
        name="vtx", models=[wire.MODEL], trusted_keys={trusted.key_id: trusted.public_pem}
    )
    with serving(simulator) as server:
        token_uri = f"{server.url}/token"
        key_file = trusted.write(tmp_path / "sa.json", token_uri, project=wire.PROJECT)
        stranger = ServiceAccountKey.generate("kid-1")  # same key id, different key
        untrusted = stranger.write(tmp_path / "other.json", token_uri, project=wire.PROJECT)
        refused = {"untrusted key": wire.adapter(server, untrusted)}
        yield Reach(server, wire.adapter(server, key_file), wire.REQUEST, refused)


@contextmanager
def huggingface(tmp_path: Path) -> Iterator[Reach]:
    """The Inference Providers router, the Hub's whoami-v2 on the same server."""
    wire = test_huggingface_wire
    simulator = HuggingFaceSimulator(name="hf", api_key=wire.KEY, models=[wire.MODEL])
    with serving(simulator) as server:
        wrong = wire.adapter(server, key="hf_wrong0123456789abcdefgh")
        yield Reach(server, wire.adapter(server), wire.REQUEST, {"wrong key": wrong})


@contextmanager
def tgi(tmp_path: Path) -> Iterator[Reach]:
    """A protected Inference Endpoint (TGI behind an HF token)."""
    wire = test_huggingface_wire
    with serving(TGISimulator(name="tgi", api_key=wire.KEY)) as server:
        refused = {
            "wrong key": wire.tgi_adapter(server, key="hf_wrong0123456789abcdefgh"),
            "no key": wire.tgi_adapter(server),
        }
        yield Reach(server, wire.tgi_adapter(server, key=wire.KEY), wire.REQUEST, refused)


@contextmanager
def ai21(tmp_path: Path) -> Iterator[Reach]:
    wire = test_ai21_wire
    with serving(AI21Simulator(name="ai21", api_key=wire.KEY)) as server:
        wrong = wire.adapter(server, key="ai21-wrong-0123456789abcdef")
        yield Reach(server, wire.adapter(server), wire.REQUEST, {"wrong key": wrong})


@contextmanager
def replicate(tmp_path: Path) -> Iterator[Reach]:
    wire = test_replicate_wire
    with serving(ReplicateSimulator(name="rep", api_key=wire.KEY)) as server:
        wrong = wire.adapter(server, key="r8_wrong0123456789abcdefghij")
        yield Reach(server, wire.adapter(server), wire.REQUEST, {"wrong key": wrong})


@contextmanager
def oobabooga(tmp_path: Path) -> Iterator[Reach]:
    """Text Generation WebUI started with --api-key."""
    wire = test_oobabooga_wire
    with serving(OobaboogaSimulator(name="tgw", api_key=wire.KEY)) as server:
        refused = {
            "wrong key": wire.adapter(server, key="ooba-wrong-0123456789"),
            "no key": wire.adapter(server),
        }
        yield Reach(server, wire.adapter(server, key=wire.KEY), wire.REQUEST, refused)


PROTOCOLS: dict[str, Callable[[Path], AbstractContextManager[Reach]]] = {
    "openai": openai,
    "anthropic": anthropic,
    "cohere": cohere,
    **{f"azure-{version}": azure(version) for version in test_azure_wire.VERSIONS},
    "bedrock": bedrock,
    "gemini": gemini,
    "ollama": ollama,
    "ollama.com": ollama_com,
    "vertex": vertex,
    "huggingface": huggingface,
    "tgi": tgi,
    "ai21": ai21,
    "replicate": replicate,
    "oobabooga": oobabooga,
}
AZURES = [f"azure-{version}" for version in test_azure_wire.VERSIONS]


@pytest.fixture
def reach(request, tmp_path, monkeypatch):
    # google-auth reads these itself; a developer's own must not leak into the Vertex rows.
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_QUOTA_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    with PROTOCOLS[request.param](tmp_path) as reached:
        yield reached


def _failures(protocols, retry_after, rows):
    """Rows of (protocol, status, class, Retry-After read back, provider code or None) from
    rows of (status, class) or (status, class, provider code)."""
    return [
        (protocol, row[0], row[1], retry_after(row[0]), row[2] if len(row) > 2 else None)
        for protocol in protocols
        for row in rows
    ]


def _always(status):
    return 2.0


def _only_429(seconds):
    return lambda status: seconds if status == 429 else None


FAILURES = [
    *_failures(
        ["openai"],
        _always,
        [
            (400, E.BAD_REQUEST),
            (403, E.PERMISSION),
            (404, E.MODEL_NOT_FOUND),
            (429, E.RATE_LIMITED),
            (500, E.SERVER_ERROR),
            (503, E.OVERLOADED),
        ],
    ),
    *_failures(
        ["anthropic"],
        _always,
        [
            (400, E.BAD_REQUEST),
            (401, E.AUTH),
            (402, E.PERMISSION),
            (403, E.PERMISSION),
            (404, E.MODEL_NOT_FOUND),
            (413, E.CONTEXT_LENGTH),
            (429, E.RATE_LIMITED),
            (500, E.SERVER_ERROR),
            (502, E.SERVER_ERROR),
            (504, E.TIMEOUT),
            (529, E.OVERLOADED),
        ],
    ),
    *_failures(
        ["cohere"],
        _always,
        [
            (400, E.BAD_REQUEST),
            (401, E.AUTH),
            (402, E.PERMISSION),
            (404, E.MODEL_NOT_FOUND),
            (422, E.BAD_REQUEST),
            (429, E.RATE_LIMITED),
            (498, E.AUTH),
            (500, E.SERVER_ERROR),
            (503, E.OVERLOADED),
            (504, E.TIMEOUT),
        ],
    ),
    *_failures(
        AZURES,
        _always,
        [
            (400, E.CONTENT_POLICY),  # Azure's prompt filter
            (401, E.AUTH),
            (403, E.PERMISSION),
            (404, E.MODEL_NOT_FOUND),
            (500, E.SERVER_ERROR),
            (503, E.OVERLOADED),
        ],
    ),
    *_failures(  # sent as x-amz-retry-after: 2000 (ms)
        ["bedrock"],
        _always,
        [
            (400, E.BAD_REQUEST, "ValidationException"),
            (403, E.PERMISSION, "AccessDeniedException"),
            (404, E.MODEL_NOT_FOUND, "ResourceNotFoundException"),
            (408, E.TIMEOUT, "ModelTimeoutException"),
            (424, E.SERVER_ERROR, "ModelErrorException"),
            (429, E.RATE_LIMITED, "ThrottlingException"),
            (500, E.SERVER_ERROR, "InternalServerException"),
            (503, E.OVERLOADED, "ServiceUnavailableException"),
        ],
    ),
    *_failures(  # only a 429 names a delay, in its RetryInfo detail (there is no header)
        ["gemini"],
        _only_429(1.5),
        [
            (400, E.BAD_REQUEST),
            (403, E.PERMISSION),
            (404, E.MODEL_NOT_FOUND),
            (429, E.RATE_LIMITED),
            (499, E.SERVER_ERROR),
            (500, E.SERVER_ERROR),
            (503, E.OVERLOADED),
            (504, E.TIMEOUT),
        ],
    ),
    *_failures(
        ["ollama"],
        _always,
        [
            (400, E.BAD_REQUEST),
            (401, E.AUTH),
            (403, E.PERMISSION),
            (404, E.MODEL_NOT_FOUND),
            (429, E.RATE_LIMITED),
            (500, E.SERVER_ERROR),
            (502, E.SERVER_ERROR),
            (503, E.OVERLOADED),
        ],
    ),
    *_failures(
        ["vertex"],
        _only_429(2.0),
        [
            (400, E.BAD_REQUEST),
            (403, E.PERMISSION),
            (404, E.MODEL_NOT_FOUND),
            (429, E.RATE_LIMITED),
            (500, E.SERVER_ERROR),
            (503, E.OVERLOADED),
            (504, E.TIMEOUT),
        ],
    ),
    *_failures(
        ["huggingface"],
        _always,
        [
            (400, E.BAD_REQUEST),
            (402, E.PERMISSION),  # the monthly included credits are spent
            (403, E.PERMISSION),
            (404, E.MODEL_NOT_FOUND),
            (429, E.RATE_LIMITED),
            (500, E.SERVER_ERROR),
            (503, E.OVERLOADED),
        ],
    ),
    *_failures(  # TGI's own {"error", "error_type"} body
        ["tgi"],
        _always,
        [
            (422, E.BAD_REQUEST, "validation"),
            (424, E.SERVER_ERROR, "generation"),
            (429, E.OVERLOADED, "overloaded"),
            (500, E.SERVER_ERROR, "incomplete_generation"),
            (503, E.OVERLOADED),  # an Inference Endpoint scaled to zero, starting
        ],
    ),
    *_failures(
        ["ai21"],
        _always,
        [
            (400, E.BAD_REQUEST),
            (401, E.AUTH),
            (403, E.PERMISSION),
            (404, E.MODEL_NOT_FOUND),
            (408, E.TIMEOUT),
            (422, E.BAD_REQUEST),
            (424, E.SERVER_ERROR),  # the model failed
            (429, E.RATE_LIMITED),
            (500, E.SERVER_ERROR),
            (503, E.OVERLOADED),
            (530, E.SERVER_ERROR),  # an internal dependency failed
        ],
    ),
    *_failures(
        ["replicate"],
        _always,
        [
            (401, E.AUTH),
            (402, E.PERMISSION),  # insufficient credit
            (403, E.PERMISSION),
            (404, E.MODEL_NOT_FOUND),
            (429, E.RATE_LIMITED),
            (500, E.SERVER_ERROR),
            (503, E.OVERLOADED),
        ],
    ),
    *_failures(
        ["oobabooga"],
        _always,
        [
            (400, E.BAD_REQUEST),
            (500, E.SERVER_ERROR),
            (503, E.OVERLOADED),
        ],
    ),
]
# The Retry-After each protocol's simulator is asked to send with an injected failure.
INJECTED_RETRY_AFTER_S = {"gemini": 1.5}
# What an error's message starts with, where a protocol's wire test pinned it.
MESSAGE_PREFIX = {"anthropic": "{status} from anthropic: "}


@pytest.mark.parametrize(
    ("reach", "status", "error_class", "retry_after_s", "provider_code"),
    FAILURES,
    indirect=["reach"],
    ids=[f"{row[0]}-{row[1]}" for row in FAILURES],
)
def test_every_failure_the_simulator_injects_has_its_class(
    request, reach, status, error_class, retry_after_s, provider_code
):
    protocol = request.node.callspec.params["reach"]
    injected = INJECTED_RETRY_AFTER_S.get(protocol, 2)
    set_faults(reach.server, fail_rate=1.0, fail_status=status, retry_after_s=injected)
    with pytest.raises(ProviderError) as caught:
        complete(reach.adapter, reach.request)
    assert caught.value.error_class is error_class
    assert caught.value.status_code == status
    assert caught.value.retry_after_s == retry_after_s
    if provider_code is not None:
        assert caught.value.provider_code == provider_code
    if protocol in MESSAGE_PREFIX:
        assert caught.value.message.startswith(MESSAGE_PREFIX[protocol].format(status=status))


#: ollama.com is the local Ollama's API behind a key: only its key handling differs, so only the
#: credential cases run on it (as the wire tests did before the table).
CREDENTIALS_ONLY = ["ollama.com"]
WITH_FAULTS = [name for name in PROTOCOLS if name not in CREDENTIALS_ONLY]


@pytest.mark.parametrize("reach", WITH_FAULTS, indirect=True)
def test_a_malformed_body_is_an_invalid_response(reach):
    set_faults(reach.server, malformed=True)
    with pytest.raises(ProviderError) as caught:
        complete(reach.adapter, reach.request)
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE


@pytest.mark.parametrize("reach", WITH_FAULTS, indirect=True)
def test_a_hung_reply_is_a_timeout(reach):
    set_faults(reach.server, hang=True)
    with pytest.raises(ProviderError) as hung:
        complete(reach.adapter, reach.request, timeout_s=0.3)
    assert hung.value.error_class is ErrorClass.TIMEOUT


# (protocol, what is wrong, status, provider code, words in the message), where the wire
# tests pinned them; None where they did not.
REFUSALS = [
    ("openai", "wrong key", None, None, None),
    ("anthropic", "wrong key", None, None, "invalid x-api-key"),
    ("cohere", "wrong key", None, None, None),
    *[(azure, "wrong key", 401, "401", None) for azure in AZURES],
    ("bedrock", "wrong secret", None, "InvalidSignatureException", None),
    ("gemini", "wrong key", None, None, None),
    ("gemini", "no key", None, None, None),
    ("ollama.com", "wrong key", None, None, None),
    ("ollama.com", "no key", None, None, None),
    ("vertex", "untrusted key", None, None, "Invalid JWT Signature"),
    ("huggingface", "wrong key", 401, None, None),
    ("tgi", "wrong key", 401, None, "token seems invalid"),
    ("tgi", "no key", 401, None, None),
    ("ai21", "wrong key", 401, None, "Bad or missing API token"),
    ("replicate", "wrong key", 401, None, "valid authentication token"),
    ("oobabooga", "wrong key", 401, None, "Unauthorized"),
    ("oobabooga", "no key", 401, None, "Unauthorized"),
]


@pytest.mark.parametrize(
    ("reach", "wrong", "status", "provider_code", "wording"),
    REFUSALS,
    indirect=["reach"],
    ids=[f"{row[0]}-{row[1]}" for row in REFUSALS],
)
def test_refused_credentials_are_auth_for_the_call_and_the_probe(
    reach, wrong, status, provider_code, wording
):
    refused = reach.refused[wrong]
    with pytest.raises(ProviderError) as caught:
        complete(refused, reach.request)
    with pytest.raises(ProviderError) as probed:
        probe(refused)
    for error in (caught.value, probed.value):
        assert error.error_class is ErrorClass.AUTH
        if provider_code is not None:
            assert error.provider_code == provider_code
    if status is not None:
        assert caught.value.status_code == status
    if wording is not None:
        assert wording in caught.value.message
    probe(reach.adapter)
