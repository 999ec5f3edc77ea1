"""The Bedrock adapter without a server: endpoints, the Converse and InvokeModel bodies, URL
encoding of model ids, reading every stopReason, and the error classification table."""

import json
import re

import pytest

from routing.config import DeploymentConfig
from routing.errors import ConfigError, ErrorClass, ProviderError
from routing.models import CompletionRequest, ProviderCompletion
from tests.providers.harness import settings
from workers.http import HttpReply
from workers.providers.anthropic import anthropic_body
from workers.providers.bedrock import BedrockAdapter, converse_body, parse_converse
from workers.providers.bedrock_errors import classify_error

KEY_ID = "AKIDUNITTEST0001"
SECRET = "unit/secret+key/0123456789abcdefghijklmn"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_DEFAULT_REGION": "eu-west-3",
}
REQUEST = CompletionRequest.model_validate(
    {
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "hi"},
            {"role": "user", "content": "and more"},
            {"role": "assistant", "content": "yes?"},
            {"role": "system", "content": "in French"},
            {"role": "user", "content": "go"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
    }
)


def adapter(model=MODEL, base_url=None, **env):
    deployment = DeploymentConfig(id="b1", provider="bedrock", model=model, base_url=base_url)
    return BedrockAdapter.from_settings(deployment, settings(**{**CREDENTIALS, **env}))


def reply(status, body, headers=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpReply(status, headers or {}, raw, 0.1)


# --- endpoints and request ----------------------------------------------------------------------


def test_endpoints_default_to_the_region_and_follow_the_override_variables():
    default = adapter()
    assert default.default_retries == 2
    assert default.build_call(REQUEST).url == (
        "https://bedrock-runtime.eu-west-3.amazonaws.com/model/"
        "anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    )
    assert default.build_probe().url == (
        "https://bedrock.eu-west-3.amazonaws.com/foundation-models?byOutputModality=TEXT"
    )
    overridden = adapter(
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME="https://vpce-rt.example/",
        AWS_ENDPOINT_URL_BEDROCK="https://vpce-cp.example",
    )
    assert overridden.build_call(REQUEST).url.startswith("https://vpce-rt.example/model/")
    assert overridden.build_probe().url.startswith("https://vpce-cp.example/foundation-models?")
    configured = adapter(base_url="http://127.0.0.1:9", AWS_ENDPOINT_URL_BEDROCK="https://x")
    assert configured.build_call(REQUEST).url.startswith("http://127.0.0.1:9/model/")
    assert configured.build_probe().url.startswith("http://127.0.0.1:9/foundation-models?")


def test_missing_credentials_are_a_config_error_naming_the_variable():
    deployment = DeploymentConfig(id="b1", provider="bedrock", model=MODEL)
    env = {k: v for k, v in CREDENTIALS.items() if k != "AWS_DEFAULT_REGION"}
    with pytest.raises(ConfigError, match="AWS_DEFAULT_REGION"):
        BedrockAdapter.from_settings(deployment, settings(**env))


@pytest.mark.parametrize(
    ("model", "label"),
    [
        (MODEL, "anthropic.claude-3-haiku-20240307-v1%3A0"),
        ("meta.llama3-8b-instruct-v1", "meta.llama3-8b-instruct-v1"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0",
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
            "%2Fus.amazon.nova-lite-v1%3A0",
        ),
    ],
)
def test_the_model_id_is_one_percent_encoded_path_label(model, label):
    url = adapter(model).build_call(REQUEST).url
    assert url == f"https://bedrock-runtime.eu-west-3.amazonaws.com/model/{label}/converse"


def test_the_converse_body_hoists_system_and_merges_turns_of_one_role():
    assert converse_body(REQUEST) == {
        "messages": [
            {"role": "user", "content": [{"text": "hi"}, {"text": "and more"}]},
            {"role": "assistant", "content": [{"text": "yes?"}]},
            {"role": "user", "content": [{"text": "go"}]},
        ],
        "system": [{"text": "be terse"}, {"text": "in French"}],
        "inferenceConfig": {
            "maxTokens": 64,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
    }
    bare = converse_body(CompletionRequest.from_prompt("hi"))
    assert bare == {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}


def test_the_call_is_signed_for_bedrock_in_the_region_and_keeps_secrets_out_of_repr():
    call = adapter().build_call(REQUEST)
    assert call.method == "POST"
    assert json.loads(call.body) == converse_body(REQUEST)
    assert call.headers["content-type"] == "application/json"
    date = call.headers["x-amz-date"]
    assert re.fullmatch(r"\d{8}T\d{6}Z", date)
    assert call.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{date[:8]}/eu-west-3/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature="
    )
    assert "x-amz-security-token" not in call.headers
    assert SECRET not in repr(call)
    assert SECRET not in repr(adapter().__dict__)


def test_a_session_token_is_sent_and_among_the_signed_headers():
    call = adapter(AWS_SESSION_TOKEN="FwoGZXIvYXdzEXAMPLE").build_call(REQUEST)
    assert call.headers["x-amz-security-token"] == "FwoGZXIvYXdzEXAMPLE"
    assert (
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"
        in (call.headers["authorization"])
    )


def test_the_probe_is_a_signed_get_without_a_body():
    call = adapter().build_probe()
    assert (call.method, call.body) == ("GET", b"")
    assert "content-type" not in call.headers
    assert "SignedHeaders=host;x-amz-date," in call.headers["authorization"]


# --- InvokeModel for Anthropic models -----------------------------------------------------------


def test_anthropic_models_use_invoke_model_with_the_anthropic_body():
    invoking = adapter(BEDROCK_ANTHROPIC_VERSION="bedrock-2023-05-31")
    assert invoking.uses_invoke_model
    call = invoking.build_call(REQUEST)
    assert call.url.endswith("/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke")
    body = json.loads(call.body)
    assert "model" not in body
    assert body == {
        **anthropic_body(REQUEST, model=None, default_max_tokens=4096),
        "anthropic_version": "bedrock-2023-05-31",
    }
    assert body["max_tokens"] == 64


def test_other_models_and_an_unset_version_stay_on_converse():
    assert not adapter("amazon.nova-lite-v1:0", BEDROCK_ANTHROPIC_VERSION="x").uses_invoke_model
    assert not adapter().uses_invoke_model
    assert adapter().build_call(REQUEST).url.endswith("/converse")


def test_invoke_model_replies_are_read_as_anthropic_messages():
    message = {
        "id": "msg_bdrk_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-haiku-20240307",
        "content": [{"type": "text", "text": "Bonjour"}],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 9, "output_tokens": 2},
    }
    result = adapter(BEDROCK_ANTHROPIC_VERSION="v").parse_reply(reply(200, message))
    assert (result.text, result.finish_reason, result.response_id) == (
        "Bonjour",
        "length",
        "msg_bdrk_1",
    )


# --- reading Converse ---------------------------------------------------------------------------


def converse(stop_reason="end_turn", content=None, usage=None):
    return {
        "output": {"message": {"role": "assistant", "content": content or [{"text": "Hello"}]}},
        "stopReason": stop_reason,
        "usage": usage or {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17},
        "metrics": {"latencyMs": 412},
    }


def test_text_blocks_are_joined_and_usage_and_request_id_kept():
    content = [
        {"text": "Let me check. "},
        {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}},
        {"text": "Done."},
    ]
    usage = {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17, "cacheReadInputTokens": 8}
    result = adapter().parse_reply(
        reply(200, converse(content=content, usage=usage), {"x-amzn-requestid": "req-1"})
    )
    assert result.text == "Let me check. Done."
    assert result.response_id == "req-1"
    assert result.usage is not None
    assert result.usage.model_dump() == {
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "total_tokens": 17,
        "cached_tokens": 8,
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("model_context_window_exceeded", "length"),
        ("a_reason_added_later", "stop"),
    ],
)
def test_every_stop_reason_is_normalised_and_the_original_kept(stop_reason, finish_reason):
    result = parse_converse(json.dumps(converse(stop_reason)).encode())
    assert (result.finish_reason, result.provider_finish_reason) == (finish_reason, stop_reason)


@pytest.mark.parametrize(
    ("body", "error_class"),
    [
        (converse("guardrail_intervened"), ErrorClass.CONTENT_POLICY),
        (converse("content_filtered"), ErrorClass.CONTENT_POLICY),
        (converse("malformed_model_output"), ErrorClass.INVALID_RESPONSE),
        (converse("malformed_tool_use"), ErrorClass.INVALID_RESPONSE),
        (converse("model_context_window_exceeded", [{"text": ""}]), ErrorClass.CONTEXT_LENGTH),
        (b'{"output": {"message": {"role": "assistant", "content": [', ErrorClass.INVALID_RESPONSE),
        (b"<html>gateway</html>", ErrorClass.INVALID_RESPONSE),
        ({"output": {}}, ErrorClass.INVALID_RESPONSE),
        ({"output": {"message": {"content": "Hello"}}}, ErrorClass.INVALID_RESPONSE),
        ([1, 2], ErrorClass.INVALID_RESPONSE),
    ],
)
def test_200_replies_that_are_not_a_usable_completion(body, error_class):
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(reply(200, body))
    assert caught.value.error_class is error_class
    assert caught.value.status_code == 200


# --- errors -------------------------------------------------------------------------------------


def aws_error(status, code, message="m", *, coral=True):
    error_type = f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/" if coral else code
    return status, {"x-amzn-ErrorType": error_type}, json.dumps({"message": message}).encode()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            aws_error(400, "ValidationException", "Input is too long for requested model."),
            "CONTEXT_LENGTH",
        ),
        (aws_error(400, "ValidationException", "Too many tokens in the prompt"), "CONTEXT_LENGTH"),
        (
            aws_error(400, "ValidationException", "The provided model identifier is invalid."),
            "MODEL_NOT_FOUND",
        ),
        (
            aws_error(
                400,
                "ValidationException",
                "Invocation of model ID x with on-demand throughput isn't supported. Retry ...",
            ),
            "MODEL_NOT_FOUND",
        ),
        (
            aws_error(400, "ValidationException", "A conversation must start with a user message."),
            "BAD_REQUEST",
        ),
        (aws_error(403, "AccessDeniedException"), "PERMISSION"),
        (aws_error(403, "UnrecognizedClientException"), "AUTH"),
        (aws_error(403, "InvalidSignatureException"), "AUTH"),
        (aws_error(403, "ExpiredTokenException"), "AUTH"),
        (aws_error(403, "IncompleteSignatureException"), "AUTH"),
        (aws_error(404, "ResourceNotFoundException"), "MODEL_NOT_FOUND"),
        (aws_error(408, "ModelTimeoutException"), "TIMEOUT"),
        (aws_error(424, "ModelErrorException"), "SERVER_ERROR"),
        (aws_error(429, "ThrottlingException", "Too many tokens, please wait"), "RATE_LIMITED"),
        (aws_error(429, "ModelNotReadyException"), "OVERLOADED"),
        (aws_error(400, "ServiceQuotaExceededException"), "RATE_LIMITED"),
        (aws_error(500, "InternalServerException"), "SERVER_ERROR"),
        (aws_error(503, "ServiceUnavailableException"), "OVERLOADED"),
        (aws_error(429, "aws.protocols#ThrottlingException", coral=False), "RATE_LIMITED"),
        (
            (403, {}, b'{"__type": "com.amazon.coral#AccessDeniedException", "message": "m"}'),
            "PERMISSION",
        ),
        ((403, {}, b'{"Code": "InvalidSignatureException", "Message": "m"}'), "AUTH"),
        (
            (400, {}, b'{"code": "ValidationException", "message": "Input is too long"}'),
            "CONTEXT_LENGTH",
        ),
        ((502, {}, b"<html>Bad Gateway</html>"), "SERVER_ERROR"),
        ((503, {}, b""), "OVERLOADED"),
        ((401, {}, b"Unauthorized"), "INVALID_RESPONSE"),
        ((405, {}, b'{"message": "Method Not Allowed"}'), "INVALID_RESPONSE"),
    ],
)
def test_the_classification_table(error, expected):
    status, headers, body = error
    classified = classify_error(status, body, headers)
    assert classified.error_class is ErrorClass[expected]
    assert classified.status_code == status


def test_the_exception_name_and_message_are_kept():
    status, headers, body = aws_error(429, "ThrottlingException", "Too many requests, please wait")
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(reply(status, body, headers))
    assert caught.value.provider_code == "ThrottlingException"
    assert "Too many requests, please wait" in caught.value.message


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"x-amz-retry-after": "1500"}, 1.5),  # botocore: whole milliseconds
        ({"x-amz-retry-after": "1500", "retry-after": "9"}, 1.5),
        ({"x-amz-retry-after": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "3"}, 3.0),
        ({"x-amz-retry-after": "-5"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers(headers, seconds):
    status, error_headers, body = aws_error(429, "ThrottlingException")
    assert classify_error(status, body, {**error_headers, **headers}).retry_after_s == seconds


def test_the_probe_needs_a_models_list():
    probing = adapter()
    probing.read_probe(reply(200, {"modelSummaries": []}))
    with pytest.raises(ProviderError) as not_bedrock:
        probing.read_probe(reply(200, b"<html>welcome</html>"))
    assert not_bedrock.value.error_class is ErrorClass.INVALID_RESPONSE
    status, headers, body = aws_error(403, "AccessDeniedException")
    with pytest.raises(ProviderError) as denied:
        probing.read_probe(reply(status, body, headers))
    assert denied.value.error_class is ErrorClass.PERMISSION


# --- review fixes: temperature, curly apostrophes, signing details, odd bodies -----------------


def with_temperature(temperature):
    return CompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], "temperature": temperature}
    )


@pytest.mark.parametrize(("asked", "sent"), [(1.7, 1.0), (2.0, 1.0), (1.0, 1.0), (0.0, 0.0)])
def test_temperature_is_capped_at_1_for_converse_and_invoke_model(asked, sent):
    request = with_temperature(asked)
    assert converse_body(request)["inferenceConfig"] == {"temperature": sent}
    assert json.loads(adapter().build_call(request).body)["inferenceConfig"]["temperature"] == sent
    invoking = adapter(BEDROCK_ANTHROPIC_VERSION="bedrock-2023-05-31")
    assert json.loads(invoking.build_call(request).body)["temperature"] == sent


@pytest.mark.parametrize(
    "message",
    [
        "Invocation of model ID anthropic.claude-sonnet-4-20250514-v1:0 with on-demand throughput "
        "isn\u2019t supported. Retry your request with the ID or ARN of an inference profile that "
        "contains this model.",
        "Invocation of model ID x with ON-DEMAND THROUGHPUT ISN'T SUPPORTED.",
        "Invocation of model ID x with on-demand throughput isn\u02bct supported.",
        "The provided model identifier is INVALID.",
    ],
)
def test_model_markers_match_curly_apostrophes_and_any_case(message):
    status, headers, body = aws_error(400, "ValidationException", message)
    classified = classify_error(status, body, headers)
    assert classified.error_class is ErrorClass.MODEL_NOT_FOUND
    assert message in classified.message  # kept as AWS wrote it


SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE/" + "c2Vzc2lvbnRva2Vu" * 40 + "+tail=="
CANONICAL = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
    "\n\nThe Canonical String for this request should have been\n'POST\n"
    "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n\n"
    "content-type:application/json\nhost:bedrock-runtime.us-east-1.amazonaws.com\n"
    f"x-amz-date:20250921T101604Z\nx-amz-security-token:{SESSION_TOKEN}\n\n"
    "content-type;host;x-amz-date;x-amz-security-token\n"
    "fea7815fd74adf3ef10f764bcea846ea6a3ffec335c8754302d2e40114f9db3e'\n\n"
    "The String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20250921T101604Z\n"
    "20250921/us-east-1/bedrock/aws4_request\n"
    "d61e31a0afb51765f0b2ee88381d0950cc8a0fc054633f0e163ff85336a4beae'\n"
)


def token_fragments(length=8):
    return {SESSION_TOKEN[i : i + length] for i in range(len(SESSION_TOKEN) - length + 1)}


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (aws_error(403, "InvalidSignatureException")[1], json.dumps({"message": CANONICAL})),
        ({}, json.dumps({"__type": "InvalidSignatureException", "Message": CANONICAL})),
        (  # not JSON: the body's snippet is what is kept
            aws_error(403, "InvalidSignatureException")[1],
            f"<InvalidSignatureException><Message>{CANONICAL}</Message>",
        ),
        (
            aws_error(403, "InvalidSignatureException")[1],
            json.dumps(
                {"message": CANONICAL.replace("The Canonical String", "the canonical string")}
            ),
        ),
        (  # the token line alone, however a proxy rewords what comes before it
            aws_error(403, "InvalidSignatureException")[1],
            json.dumps({"message": "Signature mismatch. x-amz-security-token:" + SESSION_TOKEN}),
        ),
    ],
)
def test_signature_diagnostics_are_cut_so_no_fragment_of_the_session_token_is_kept(headers, body):
    with pytest.raises(ProviderError) as caught:
        adapter().parse_reply(reply(403, body.encode(), headers))
    error = caught.value
    assert error.error_class is ErrorClass.AUTH
    assert "x-amz-security-token:" not in error.message.lower()
    assert "string-to-sign" not in error.message.lower()
    for kept in (error.message, str(error), repr(error)):
        assert not [piece for piece in token_fragments() if piece in kept]


def test_the_part_of_a_signature_message_before_the_diagnostics_is_kept():
    status, headers, body = aws_error(403, "InvalidSignatureException", CANONICAL)
    message = classify_error(status, body, headers).message
    assert message == (
        "403 from bedrock (InvalidSignatureException): The request signature we calculated does "
        "not match the signature you provided. Check your AWS Secret Access Key and signing "
        "method. Consult the service documentation for details."
    )
    only_details = aws_error(
        403, "InvalidSignatureException", CANONICAL[CANONICAL.index("The C") :]
    )
    assert (
        "(no message before the signing details)"
        in classify_error(only_details[0], only_details[2], only_details[1]).message
    )
    status, headers, body = aws_error(403, "InvalidSignatureException", "'host' must be signed.")
    assert classify_error(status, body, headers).message.endswith("'host' must be signed.")


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17, "cacheReadInputTokens": 3},
            (12, 5, 17, 3),
        ),
        ({"inputTokens": 12.0, "outputTokens": 5}, (12, 5, 17, None)),
        ({"inputTokens": 12, "outputTokens": 5, "totalTokens": -1}, (12, 5, 17, None)),
        ({"inputTokens": 12, "outputTokens": 5, "totalTokens": "17"}, (12, 5, 17, None)),
        ({"inputTokens": 12, "outputTokens": 5, "cacheReadInputTokens": 1e999}, (12, 5, 17, None)),
        ({"inputTokens": 12, "outputTokens": 5, "cacheReadInputTokens": "3"}, (12, 5, 17, None)),
        ({"inputTokens": 12, "outputTokens": 5, "cacheReadInputTokens": None}, (12, 5, 17, None)),
        ({"inputTokens": -1, "outputTokens": 5}, None),
        ({"inputTokens": 1e999, "outputTokens": 5}, None),
        ({"inputTokens": float("nan"), "outputTokens": 5}, None),
        ({"inputTokens": "12", "outputTokens": "5"}, None),
        ({"inputTokens": 12, "outputTokens": 5.5}, None),
        ({"inputTokens": True, "outputTokens": 5}, None),
        ({"inputTokens": 12}, (12, 0, 12, None)),
        ({"outputTokens": 5, "totalTokens": 5}, (0, 5, 5, None)),
        ({"inputTokens": None, "outputTokens": None}, None),
        ({}, None),
        ([12, 5], None),
        ("12", None),
        (None, None),
    ],
)
def test_odd_usage_never_costs_the_completion(usage, expected):
    body = converse()
    body["usage"] = usage
    result = adapter().parse_reply(reply(200, json.dumps(body).encode()))
    assert result.text == "Hello"
    got = result.usage
    assert (None if got is None else tuple(got.model_dump().values())) == expected


ODD_200_BODIES = [
    b"null",
    b"true",
    b"17",
    b'"a string"',
    b"[]",
    b'[{"output": {"message": {"content": [{"text": "x"}]}}}]',
    b"{}",
    b'{"output": null}',
    b'{"output": "text"}',
    b'{"output": {"message": null}}',
    b'{"output": {"message": []}}',
    b'{"output": {"message": {"content": null}}}',
    b'{"output": {"message": {"content": {"text": "x"}}}}',
    b'{"output": {"message": {"content": [null, 1, "x", [], {"text": null}, {"text": 5}]}}}',
    b'{"output": {"message": {"content": [{"text": "x"}]}}, "stopReason": null, "usage": null}',
    b'{"output": {"message": {"content": [{"text": "x"}]}}, "stopReason": 7}',
    b'{"output": {"message": {"content": [{"text": "x"}]}}, "stopReason": ["end_turn"]}',
    b'{"output": {"message": {"content": [{"text": "x"}]}}, "stopReason": {"a": 1}}',
    b'{"output": {"message": {"content": [{"text": "x"}]}}, "usage": {"inputTokens": "1e999"}}',
    b'{"output": {"message": {"content": [{"text": "x"}]}}, "usage": {"inputTokens": 1e999, '
    b'"outputTokens": -1e999, "totalTokens": NaN, "cacheReadInputTokens": Infinity}}',
    b'{"output": {"message": {"content": [{"text": "x"}]}}, "usage": {"inputTokens": '
    + b"9" * 5000
    + b"}}",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"output": ' * 50_000 + b"null" + b"}" * 50_000,
    b"\xff\xfe\x00garbage",
    b"",
    b"   \n",
]


@pytest.mark.parametrize("body", ODD_200_BODIES, ids=range(len(ODD_200_BODIES)))
def test_no_200_body_raises_anything_but_a_provider_error(body):
    try:
        outcome: object = adapter().parse_reply(reply(200, body))
    except ProviderError as error:
        outcome = error
    if isinstance(outcome, ProviderError):
        assert outcome.error_class is ErrorClass.INVALID_RESPONSE
        assert len(outcome.message) < 700
    else:
        assert isinstance(outcome, ProviderCompletion)


ODD_ERROR_BODIES = [
    *ODD_200_BODIES,
    b'{"message": null, "Message": null}',
    b'{"message": 7}',
    b'{"message": ["Input is too long"]}',
    b'{"message": {"nested": "x"}}',
    b'{"code": 7, "Code": null, "__type": ["ValidationException"]}',
    b'{"code": "", "message": "m"}',
    b'{"__type": "#", "message": "m"}',
    b'{"code": ":::", "message": "m"}',
    b'{"message": "' + b"x" * 100_000 + b'"}',
]
ODD_ERROR_HEADERS = [
    {},
    {"x-amzn-errortype": ""},
    {"x-amzn-errortype": ":"},
    {"x-amzn-errortype": "#"},
    {"x-amzn-errortype": "ValidationException", "x-amz-retry-after": "1e999"},
    {"x-amzn-errortype": "ThrottlingException", "x-amz-retry-after": "9" * 5000},
    {"x-amzn-errortype": "ThrottlingException", "retry-after": "NaN"},
]


@pytest.mark.parametrize("headers", ODD_ERROR_HEADERS)
@pytest.mark.parametrize("body", ODD_ERROR_BODIES, ids=range(len(ODD_ERROR_BODIES)))
def test_no_error_body_raises_anything_but_a_provider_error(headers, body):
    for status in (400, 403, 429, 500, 418):
        with pytest.raises(ProviderError) as caught:
            adapter().parse_reply(reply(status, body, headers))
        assert caught.value.status_code == status
        assert len(caught.value.message) < 700
        with pytest.raises(ProviderError):
            adapter().read_probe(reply(status, body, headers))


@pytest.mark.parametrize("body", ODD_200_BODIES, ids=range(len(ODD_200_BODIES)))
def test_no_invoke_model_200_body_raises_anything_but_a_provider_error(body):
    invoking = adapter(BEDROCK_ANTHROPIC_VERSION="bedrock-2023-05-31")
    with pytest.raises(ProviderError) as caught:
        invoking.parse_reply(reply(200, body))
    assert caught.value.error_class is ErrorClass.INVALID_RESPONSE


def test_odd_invoke_model_usage_never_costs_the_completion():
    message = {
        "type": "message",
        "content": [{"type": "text", "text": "Bonjour"}],
        "usage": {"input_tokens": 1e999, "output_tokens": -1},
    }
    raw = json.dumps(message).encode()  # json writes 1e999 as Infinity, which Python reads back
    result = adapter(BEDROCK_ANTHROPIC_VERSION="v").parse_reply(reply(200, raw))
    assert (result.text, result.usage) == ("Bonjour", None)
