"""Conformance of turnout's embedders with the official SDKs: for the same texts our embedder
sends what the SDK sends (path, query, body), and both read the simulator's vectors the same
way. openai's ``embeddings.create`` (its default base64 encoding included), cohere's
``ClientV2.embed``, google-genai's ``models.embed_content`` and boto3's ``invoke_model`` for
Titan and Cohere Embed."""

import json
from typing import Any

import boto3
import cohere
import openai
import pytest
from botocore.config import Config
from google import genai
from google.genai import types
from google.oauth2 import service_account

from ops.simulator.azure_sim import AzureSimulator
from ops.simulator.bedrock_sim import BedrockSimulator
from ops.simulator.cohere_sim import CohereSimulator
from ops.simulator.gemini_sim import GeminiSimulator
from ops.simulator.ollama_sim import OllamaSimulator
from ops.simulator.openai_sim import OpenAISimulator
from ops.simulator.vertex_sim import VertexSimulator
from routing.embeddings import EmbeddingRequest
from routing.errors import ErrorClass, ProviderError
from tests.providers.harness import (
    TRANSPORT,
    ServiceAccountKey,
    adapter_for,
    recent,
    serving,
    set_faults,
    settings,
)
from workers.embed_call import call_embedder

TEXTS = ["the first text", "a second, longer text to embed"]
pytestmark = pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated")


def embed(adapter: Any, request: EmbeddingRequest) -> Any:
    return call_embedder(TRANSPORT, adapter, request, 5.0)


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) < 1e-6 for x, y in zip(a, b, strict=True))


def same_call(theirs: dict[str, Any], mine: dict[str, Any]) -> None:
    assert (mine["method"], mine["path"], mine["query"]) == (
        theirs["method"],
        theirs["path"],
        theirs["query"],
    )
    assert mine["body"] == theirs["body"]


# --- openai ----------------------------------------------------------------------------------

OPENAI_KEY = "sk-conformance-0123456789abcdef"


@pytest.fixture
def openai_server():
    with serving(OpenAISimulator(name="oai", api_key=OPENAI_KEY)) as running:
        yield running


def openai_ours(server: Any, model: str = "text-embedding-3-small") -> Any:
    env = settings(OPENAI_API_KEY=OPENAI_KEY)
    return adapter_for("openai", model, env, base_url=f"{server.url}/v1")


def test_openai_embedder_sends_what_the_sdk_sends_and_reads_the_same_vectors(openai_server):
    sdk = openai.OpenAI(api_key=OPENAI_KEY, base_url=f"{openai_server.url}/v1", max_retries=0)
    theirs = sdk.embeddings.create(model="text-embedding-3-small", input=TEXTS, dimensions=256)
    mine = embed(openai_ours(openai_server), EmbeddingRequest(input=TEXTS, dimensions=256))
    sent_theirs, sent_mine = recent(openai_server)
    same_call(sent_theirs, sent_mine)
    assert sent_mine["body"]["encoding_format"] == "base64"  # as the SDK asks
    assert sent_mine["headers"]["authorization"] == "Bearer [hidden]"
    assert [len(v) for v in mine.vectors] == [256, 256]
    for ours_v, item in zip(mine.vectors, theirs.data, strict=True):
        assert close(ours_v, item.embedding)
    assert mine.usage.prompt_tokens == theirs.usage.prompt_tokens


def test_openai_compatible_servers_get_float_and_the_table_dimension(openai_server):
    env = settings(TOGETHER_API_KEY=OPENAI_KEY)
    adapter = adapter_for(
        "together", "BAAI/bge-base-en-v1.5", env, base_url=f"{openai_server.url}/v1"
    )
    mine = embed(adapter, EmbeddingRequest(input=TEXTS))
    (sent,) = recent(openai_server)
    assert sent["path"] == "/v1/embeddings"
    assert sent["body"]["encoding_format"] == "float"
    assert [len(v) for v in mine.vectors] == [768, 768]


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(429, ErrorClass.RATE_LIMITED), (500, ErrorClass.SERVER_ERROR), (401, ErrorClass.AUTH)],
)
def test_openai_embedding_errors_are_classified_as_completions_are(
    openai_server, status, error_class
):
    set_faults(openai_server, fail_rate=1, fail_status=status)
    with pytest.raises(ProviderError) as raised:
        embed(openai_ours(openai_server), EmbeddingRequest(input=TEXTS))
    assert raised.value.error_class is error_class


# --- Azure OpenAI (classic deployments path and v1) --------------------------------------------

AZURE_KEY = "azure-conformance-key-0123456789"
AZURE_DEPLOYMENT = "embed-prod"


@pytest.mark.parametrize("surface", ["classic", "v1"])
def test_azure_embedder_sends_what_the_sdk_sends(surface):
    simulator = AzureSimulator(name="az", api_key=AZURE_KEY, models=[AZURE_DEPLOYMENT])
    with serving(simulator) as server:
        if surface == "classic":
            sdk: openai.OpenAI = openai.AzureOpenAI(
                api_key=AZURE_KEY,
                azure_endpoint=server.url,
                api_version="2024-10-21",
                max_retries=0,
            )
        else:
            sdk = openai.OpenAI(
                api_key=AZURE_KEY, base_url=f"{server.url}/openai/v1/", max_retries=0
            )
        theirs = sdk.embeddings.create(model=AZURE_DEPLOYMENT, input=TEXTS)
        version = "2024-10-21" if surface == "classic" else "v1"
        env = settings(
            AZURE_API_KEY=AZURE_KEY, AZURE_BASE_URL=server.url, AZURE_API_VERSION=version
        )
        mine = embed(
            adapter_for("azure", AZURE_DEPLOYMENT, env, base_model="text-embedding-3-small"),
            EmbeddingRequest(input=TEXTS),
        )
        sent_theirs, sent_mine = recent(server)
    same_call(sent_theirs, sent_mine)
    assert sent_mine["headers"]["api-key"].endswith("[hidden]")
    for ours_v, item in zip(mine.vectors, theirs.data, strict=True):
        assert close(ours_v, item.embedding)


# --- cohere ----------------------------------------------------------------------------------

COHERE_KEY = "co-conformance-0123456789abcdef"


def test_cohere_embedder_sends_what_client_v2_embed_sends():
    with serving(CohereSimulator(name="co", api_key=COHERE_KEY)) as server:
        sdk = cohere.ClientV2(api_key=COHERE_KEY, base_url=server.url, max_retries=0)
        theirs = sdk.embed(
            model="embed-v4.0",
            texts=TEXTS,
            input_type="search_query",
            embedding_types=["float"],
        )
        adapter = adapter_for(
            "cohere", "embed-v4.0", settings(COHERE_API_KEY=COHERE_KEY), base_url=server.url
        )
        mine = embed(adapter, EmbeddingRequest(input=TEXTS, input_type="search_query"))
        sent_theirs, sent_mine = recent(server)
    same_call(sent_theirs, sent_mine)
    assert theirs.embeddings.float_ is not None
    for ours_v, their_v in zip(mine.vectors, theirs.embeddings.float_, strict=True):
        assert close(ours_v, their_v)
    assert len(mine.vectors[0]) == 1536
    assert theirs.meta is not None
    assert theirs.meta.billed_units is not None
    assert mine.usage.prompt_tokens == theirs.meta.billed_units.input_tokens


# --- google-genai (Gemini API) ---------------------------------------------------------------

GEMINI_KEY = "gm-conformance-0123456789abcdef"
GEMINI_MODEL = "gemini-embedding-001"


def test_gemini_embedder_sends_what_embed_content_sends():
    simulator = GeminiSimulator(name="gem", api_key=GEMINI_KEY, models=[GEMINI_MODEL])
    with serving(simulator) as server:
        options = types.HttpOptions(base_url=server.url, api_version="v1beta")
        client = genai.Client(api_key=GEMINI_KEY, http_options=options)
        theirs = client.models.embed_content(
            model=GEMINI_MODEL,
            contents=TEXTS,
            config=types.EmbedContentConfig(
                task_type="RETRIEVAL_DOCUMENT", output_dimensionality=64
            ),
        )
        adapter = adapter_for(
            "gemini",
            GEMINI_MODEL,
            settings(GEMINI_API_KEY=GEMINI_KEY),
            base_url=f"{server.url}/v1beta",
        )
        mine = embed(
            adapter, EmbeddingRequest(input=TEXTS, input_type="search_document", dimensions=64)
        )
        sent_theirs, sent_mine = recent(server)
    same_call(sent_theirs, sent_mine)
    assert sent_mine["headers"]["x-goog-api-key"].endswith("[hidden]")
    assert theirs.embeddings is not None
    for ours_v, item in zip(mine.vectors, theirs.embeddings, strict=True):
        assert item.values is not None
        assert close(ours_v, item.values)
    assert len(mine.vectors[0]) == 64


# --- google-genai on Vertex AI (:predict) ---------------------------------------------------------

VERTEX_PROJECT, VERTEX_LOCATION = "sim-project", "us-central1"


def test_vertex_embedder_sends_what_embed_content_sends_on_vertex(tmp_path, monkeypatch):
    monkeypatch.delenv("GOOGLE_CLOUD_QUOTA_PROJECT", raising=False)
    sa_key = ServiceAccountKey.generate()
    model = "text-embedding-005"
    simulator = VertexSimulator(
        name="vtx", models=[model], trusted_keys={sa_key.key_id: sa_key.public_pem}
    )
    with serving(simulator) as server:
        key_file = sa_key.write(tmp_path / "sa.json", f"{server.url}/token", project=VERTEX_PROJECT)
        credentials = service_account.Credentials.from_service_account_file(
            str(key_file), scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        client = genai.Client(
            vertexai=True,
            project=VERTEX_PROJECT,
            location=VERTEX_LOCATION,
            credentials=credentials,
            http_options=types.HttpOptions(base_url=server.url, api_version="v1"),
        )
        theirs = client.models.embed_content(
            model=model,
            contents=TEXTS,
            config=types.EmbedContentConfig(task_type="RETRIEVAL_QUERY", output_dimensionality=32),
        )
        env = settings(
            GOOGLE_CLOUD_PROJECT=VERTEX_PROJECT,
            GOOGLE_CLOUD_LOCATION=VERTEX_LOCATION,
            GOOGLE_APPLICATION_CREDENTIALS=str(key_file),
            VERTEX_BASE_URL=server.url,
        )
        mine = embed(
            adapter_for("vertex", model, env),
            EmbeddingRequest(input=TEXTS, input_type="search_query", dimensions=32),
        )
        calls = [r for r in recent(server) if r["path"].endswith(":predict")]
    sent_theirs, sent_mine = calls
    same_call(sent_theirs, sent_mine)
    assert sent_mine["headers"]["authorization"] == "Bearer [hidden]"
    assert theirs.embeddings is not None
    for ours_v, item in zip(mine.vectors, theirs.embeddings, strict=True):
        assert item.values is not None
        assert close(ours_v, item.values)
    assert len(mine.vectors[0]) == 32
    assert mine.usage is not None


# --- boto3 InvokeModel (Titan, Cohere Embed on Bedrock) ------------------------------------------

REGION, KEY_ID, SECRET = "us-east-1", "AKIACONFORMANCE0001", "bedrock-secret-0123456789"


@pytest.mark.parametrize(
    ("model", "body", "texts"),
    [
        ("amazon.titan-embed-text-v2:0", {"inputText": TEXTS[0], "dimensions": 256}, TEXTS[:1]),
        (
            "cohere.embed-english-v3",
            {"texts": TEXTS, "input_type": "search_document", "embedding_types": ["float"]},
            TEXTS,
        ),
    ],
)
def test_bedrock_embedder_sends_what_invoke_model_sends(model, body, texts):
    simulator = BedrockSimulator(name="bdr", api_key=f"{KEY_ID}:{SECRET}", region=REGION)
    with serving(simulator) as server:
        sdk = boto3.client(
            "bedrock-runtime",
            region_name=REGION,
            endpoint_url=server.url,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            config=Config(retries={"max_attempts": 1}),
        )
        reply = sdk.invoke_model(
            modelId=model,
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
        )
        theirs = json.loads(reply["body"].read())
        env = settings(
            AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION=REGION
        )
        adapter = adapter_for("bedrock", model, env, base_url=server.url)
        dimensions = body.get("dimensions")
        mine = embed(adapter, EmbeddingRequest(input=texts, dimensions=dimensions))
        sent_theirs, sent_mine = recent(server)
    assert sent_mine["path"] == sent_theirs["path"]
    assert sent_mine["body"] == sent_theirs["body"]
    their_vectors = (
        [theirs["embedding"]] if "embedding" in theirs else theirs["embeddings"]["float"]
    )
    for ours_v, their_v in zip(mine.vectors, their_vectors, strict=True):
        assert close(ours_v, their_v)
    assert mine.usage is not None
    assert mine.usage.prompt_tokens > 0


def test_titan_takes_one_text_per_call_and_the_job_moves_on():
    env = settings(
        AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION=REGION
    )
    adapter = adapter_for(
        "bedrock", "amazon.titan-embed-text-v2:0", env, base_url="http://127.0.0.1:9"
    )
    with pytest.raises(ProviderError) as raised:
        embed(adapter, EmbeddingRequest(input=TEXTS))
    assert raised.value.error_class is ErrorClass.CONFIGURATION
    assert not raised.value.route_at_fault


# --- ollama (no official SDK in the venv: the documented /api/embed shape) -----------------------


def test_ollama_embedder_posts_api_embed_and_reads_its_vectors():
    with serving(OllamaSimulator(name="oll", models=["nomic-embed-text"])) as server:
        adapter = adapter_for("ollama", "nomic-embed-text", settings(), base_url=server.url)
        mine = embed(adapter, EmbeddingRequest(input=TEXTS))
        (sent,) = recent(server)
    assert (sent["method"], sent["path"]) == ("POST", "/api/embed")
    assert sent["body"] == {"model": "nomic-embed-text", "input": TEXTS}
    assert [len(v) for v in mine.vectors] == [768, 768]
    assert mine.vectors[0] != mine.vectors[1]
    assert mine.usage is not None
    assert mine.usage.prompt_tokens > 0


def test_a_gemini_embedding_model_on_vertex_is_refused_by_the_route_not_failed(tmp_path):
    sa_key = ServiceAccountKey.generate()
    key_file = sa_key.write(tmp_path / "sa.json", "http://127.0.0.1:9/token", project="p")
    env = settings(
        GOOGLE_CLOUD_PROJECT="p",
        GOOGLE_CLOUD_LOCATION="us-central1",
        GOOGLE_APPLICATION_CREDENTIALS=str(key_file),
        VERTEX_BASE_URL="http://127.0.0.1:9",
    )
    with pytest.raises(ProviderError) as raised:
        embed(adapter_for("vertex", "gemini-embedding-001", env), EmbeddingRequest(input=TEXTS))
    assert raised.value.error_class is ErrorClass.CONFIGURATION
    assert not raised.value.route_at_fault
