import pytest

from routing.config import parse_config


@pytest.fixture
def config():
    return parse_config(
        {
            "deployments": [
                {"id": "openai-main", "provider": "openai", "model": "gpt-4o-mini"},
                {"id": "groq-backup", "provider": "groq", "model": "llama-3.1-8b-instant"},
                {"id": "local", "provider": "ollama", "model": "llama3.2"},
            ],
            "policies": {
                "default": {"targets": ["openai-main", "groq-backup"]},
                "local_first": {"targets": ["local", "openai-main"], "deadline_s": 30},
            },
        },
        source="test.yaml",
    )
