"""Text Generation WebUI is used through OpenAI's SDK (its docs say so): pointed at the
simulator, ``openai.OpenAI`` sends what the adapter sends, and both read the loaded model's
answer and FastAPI's 401 the same way."""

from typing import Any

import openai
import pytest

from ops.simulator.oobabooga_sim import OobaboogaSimulator
from routing.errors import ErrorClass, ProviderError
from routing.models import CompletionRequest
from tests.providers.harness import adapter_for, complete, recent, serving, settings

KEY = "ooba-conformance-0123456789"
MESSAGES: Any = [{"role": "user", "content": "Hi"}]
REQUEST = CompletionRequest.model_validate(
    {"messages": MESSAGES, "max_tokens": 32, "temperature": 0.7}
)


def test_the_request_and_the_reply_are_the_sdks():
    with serving(OobaboogaSimulator(name="tgw", api_key=KEY)) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
        theirs_result = client.chat.completions.create(
            model="local", messages=MESSAGES, max_tokens=32, temperature=0.7
        )
        env = settings(OOBABOOGA_API_KEY=KEY)
        mine_result = complete(
            adapter_for("oobabooga", "local", env, base_url=f"{server.url}/v1"), REQUEST
        )
        theirs, mine = recent(server)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(
                base_url=f"{server.url}/v1", api_key="wrong-0123456789", max_retries=0
            ).chat.completions.create(model="local", messages=MESSAGES)
        wrong = adapter_for(
            "oobabooga",
            "local",
            settings(OOBABOOGA_API_KEY="wrong-0123456789"),
            base_url=f"{server.url}/v1",
        )
        with pytest.raises(ProviderError) as refused:
            complete(wrong, REQUEST)
    assert (mine["method"], mine["path"]) == (theirs["method"], theirs["path"])
    assert mine["headers"]["authorization"] == theirs["headers"]["authorization"]
    assert mine["body"] == theirs["body"]
    assert mine_result.text == theirs_result.choices[0].message.content
    assert mine_result.model == theirs_result.model
    assert refused.value.error_class is ErrorClass.AUTH
