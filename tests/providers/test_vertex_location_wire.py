"""A Vertex location per deployment: ``location: global`` for a model served only there
(Gemini 3 previews), a regional one beside it, GOOGLE_CLOUD_LOCATION as the fallback and
``global`` (google-genai's default) when neither is set. Against the Vertex simulator over
HTTP, which refuses a global-only model on a regional path with Vertex's 404."""

import pytest

from ops.simulator.vertex_sim import VertexSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import ServiceAccountKey, adapter_for, complete, serving, settings
from workers.providers.gemini import VertexAdapter

PROJECT = "proj-1"
GLOBAL_MODEL, REGIONAL_MODEL = "gemini-3-pro-preview", "gemini-2.5-flash"
REQUEST = CompletionRequest.model_validate(
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
)


@pytest.fixture(autouse=True)
def _no_ambient_google_settings(monkeypatch):
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_QUOTA_PROJECT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def stack(tmp_path):
    key = ServiceAccountKey.generate()
    simulator = VertexSimulator(
        models=[GLOBAL_MODEL, REGIONAL_MODEL],
        trusted_keys={key.key_id: key.public_pem},
        global_only=frozenset({GLOBAL_MODEL}),
    )
    with serving(simulator) as server:
        key_file = key.write(tmp_path / "sa.json", f"{server.url}/token", project=PROJECT)
        yield simulator, server, key_file


def vertex(server, key_file, model, *, location=None, **env):
    values = {"GOOGLE_CLOUD_PROJECT": PROJECT, "GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}
    fields = {"location": location} if location else {}
    return adapter_for("vertex", model, settings(**values, **env), base_url=server.url, **fields)


def test_location_global_per_deployment_beside_a_regional_one(stack):
    simulator, server, key_file = stack
    env = {"GOOGLE_CLOUD_LOCATION": "us-central1"}
    complete(vertex(server, key_file, GLOBAL_MODEL, location="global", **env), REQUEST)
    complete(vertex(server, key_file, REGIONAL_MODEL, **env), REQUEST)
    assert simulator.locations == ["global", "us-central1"]
    with pytest.raises(ProviderError) as caught:
        complete(vertex(server, key_file, GLOBAL_MODEL, **env), REQUEST)
    assert caught.value.error_class is ErrorClass.MODEL_NOT_FOUND
    assert "locations/us-central1" in caught.value.message


def test_without_any_location_it_is_global_as_in_google_genai(stack):
    simulator, server, key_file = stack
    complete(vertex(server, key_file, GLOBAL_MODEL), REQUEST)
    assert simulator.locations == ["global"]


def test_the_global_location_is_served_by_the_host_without_a_region(tmp_path):
    """Without a base_url override: google-genai's _api_client sends ``global`` to
    https://aiplatform.googleapis.com/ and a region to {region}-aiplatform.googleapis.com."""
    key_file = ServiceAccountKey.generate().write(tmp_path / "sa.json", "https://oauth2.invalid")
    env = settings(GOOGLE_CLOUD_PROJECT=PROJECT, GOOGLE_APPLICATION_CREDENTIALS=str(key_file))
    global_ = adapter_for("vertex", GLOBAL_MODEL, env, location="global")
    assert isinstance(global_, VertexAdapter)
    assert global_.url == (
        f"https://aiplatform.googleapis.com/v1/projects/{PROJECT}/locations/global/"
        f"publishers/google/models/{GLOBAL_MODEL}:generateContent"
    )
    regional = adapter_for("vertex", REGIONAL_MODEL, env, location="europe-west4")
    assert isinstance(regional, VertexAdapter)
    assert regional.url.startswith(
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj-1/locations/europe-west4/"
    )
