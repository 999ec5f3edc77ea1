"""AWS Bedrock Runtime (../shared/providers.md §7, §18): Converse for every model, and InvokeModel
with the Anthropic Messages body for Anthropic models when BEDROCK_ANTHROPIC_VERSION is set.

Requests are signed with SigV4 by botocore, AWS's own signer, never by hand, with credentials
from botocore's own chain, frozen for each call (workers.providers.aws_credentials); or they
carry a Bedrock API key as ``Authorization: Bearer``, as botocore does when
AWS_BEARER_TOKEN_BEDROCK is set (bedrock-runtime's service model lists ``aws.auth#sigv4`` and
``smithy.api#httpBearerAuth``).

The model id is a URI label, so ``anthropic.claude-3-haiku-20240307-v1:0`` goes on the wire as
``...-v1%3A0`` (exactly as boto3 sends it) and AWS canonicalises that path by encoding it once
more (``%253A``): signing the very URL string that is sent, with botocore, gets both right.
Signing happens in ``build_call`` because the call is sent at once: a signature is only
accepted for a few minutes.

Errors are classified by the exception name in ``x-amzn-ErrorType`` (read as botocore's
RestJSONParser reads it), not by status alone: Bedrock's 403 is a bad signature or a missing
permission, and its 429 a throttle or a model that is still loading.

Decisions, so nobody has to rediscover them:

* Converse ``temperature`` is capped at 1.0 (``anthropic_body`` caps InvokeModel's): Bedrock's
  models take 0-1, OpenAI's scale goes to 2, and the ValidationException a higher value earns
  is bad_request, which would fail the job although other targets accept it.
* AWS's InvalidSignatureException message spells out its canonical request, which holds
  ``x-amz-security-token:<token>``, and string-to-sign. A clipped token escapes whole-secret
  redaction, so the message is cut where those begin: they are never kept.
* Markers are matched case-insensitively with apostrophes made straight (AWS writes U+2019).
* Usage counts go through ``token_count``: odd ones cost the usage or the count, never the
  completion.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from pydantic import SecretStr

from routing.config import DeploymentConfig
from routing.errors import (
    ConfigError,
    ContentPolicy,
    ContextLength,
    InvalidResponse,
)
from routing.models import CompletionRequest, FinishReason, ProviderCompletion, Usage
from workers.http import HttpCall, HttpReply
from workers.providers.anthropic import DEFAULT_MAX_TOKENS, anthropic_body, parse_message
from workers.providers.aws_credentials import (
    AwsCredentialChain,
    bearer_allowed,
    choose_region,
    config_file_region,
    static_keys,
)
from workers.providers.base import USER_AGENT, deployment_key
from workers.providers.bedrock_errors import classify_error
from workers.providers.reading import read_json, sane_counts, snippet, token_count
from workers.settings import WorkerSettings

#: The SigV4 service name of both bedrock-runtime and the bedrock control plane.
SIGNING_NAME = "bedrock"
#: botocore's "standard" retry mode: 3 attempts, so 2 retries.
DEFAULT_RETRIES = 2
#: The top of the temperature range of the models on Bedrock.
MAX_TEMPERATURE = 1.0

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


class BedrockAdapter:
    """Builds signed Converse (or InvokeModel) calls for one deployment and reads their replies.

    Each call is signed with credentials frozen from botocore at that moment
    (workers.providers.aws_credentials), or carries the Bedrock API key as a bearer token; no
    secret is kept on the adapter beyond the ``SecretStr`` of that key.
    """

    def __init__(
        self,
        deployment: DeploymentConfig,
        *,
        region: str,
        runtime_url: str,
        control_url: str,
        credentials: AwsCredentialChain | None = None,
        bearer_token: SecretStr | None = None,
        anthropic_version: str | None = None,
    ) -> None:
        if (credentials is None) == (bearer_token is None):
            raise ValueError("a Bedrock adapter needs either credentials or a bearer token")
        self.deployment = deployment
        self.default_retries = DEFAULT_RETRIES
        self.region = region
        self.runtime_url = runtime_url.rstrip("/")
        self.control_url = control_url.rstrip("/")
        self.anthropic_version = anthropic_version
        self.credentials = credentials
        self._bearer_token = bearer_token

    @classmethod
    def from_settings(
        cls, deployment: DeploymentConfig, settings: WorkerSettings
    ) -> BedrockAdapter:
        """The region is the deployment's, else AWS_REGION (or LiteLLM's AWS_REGION_NAME),
        AWS_DEFAULT_REGION, the profile's. AWS_BEARER_TOKEN_BEDROCK, when set, is used instead
        of SigV4, as botocore prefers it when it is set. A deployment's ``base_url`` serves
        both APIs (a simulator, a proxy); otherwise each has its own override variable, as in
        the AWS SDKs, and then its regional endpoint."""
        choice = choose_region(
            deployment.region,
            {
                "AWS_REGION": settings.aws_region,
                "AWS_DEFAULT_REGION": settings.aws_default_region,
            },
            lambda: config_file_region(settings.aws_profile),
        )
        if choice is None:
            raise ConfigError(
                f"bedrock deployment {deployment.id} has no region: give it region: in the "
                "config, or export AWS_REGION (or AWS_DEFAULT_REGION), or set region in the "
                "AWS profile"
            )
        region = choice.region
        runtime = (
            deployment.base_url
            or settings.aws_endpoint_url_bedrock_runtime
            or f"https://bedrock-runtime.{region}.amazonaws.com"
        )
        control = (
            deployment.base_url
            or settings.aws_endpoint_url_bedrock
            or f"https://bedrock.{region}.amazonaws.com"
        )
        options: dict[str, Any] = {}
        bearer = bearer_token(deployment, settings)
        if bearer is not None:
            for url in {runtime, control}:
                if not bearer_allowed(url):
                    raise ConfigError(
                        f"bedrock deployment {deployment.id}: AWS_BEARER_TOKEN_BEDROCK is sent "
                        f"only over HTTPS (as botocore does), and {url} is plain HTTP"
                    )
            options["bearer_token"] = bearer
        else:
            options["credentials"] = credential_chain(settings)
        return cls(
            deployment,
            region=region,
            runtime_url=runtime,
            control_url=control,
            anthropic_version=settings.bedrock_anthropic_version,
            **options,
        )

    @property
    def uses_invoke_model(self) -> bool:
        """Anthropic models go through InvokeModel when an anthropic_version is configured."""
        return self.anthropic_version is not None and "anthropic." in self.deployment.model

    def model_url(self, operation: str) -> str:
        """The model id is one URI label: ':' and an ARN's '/' are percent-encoded (as boto3
        does)."""
        return f"{self.runtime_url}/model/{quote(self.deployment.model, safe='')}/{operation}"

    def build_call(self, request: CompletionRequest) -> HttpCall:
        if self.uses_invoke_model:
            # Anthropic requires max_tokens (Converse does not): the Anthropic adapter's default.
            body = anthropic_body(request, model=None, default_max_tokens=DEFAULT_MAX_TOKENS)
            body["anthropic_version"] = self.anthropic_version
            return self.signed("POST", self.model_url("invoke"), json.dumps(body).encode())
        body = converse_body(request)
        return self.signed("POST", self.model_url("converse"), json.dumps(body).encode())

    def build_probe(self) -> HttpCall:
        """ListFoundationModels: it proves the credentials and the signing, not model access."""
        return self.signed("GET", f"{self.control_url}/foundation-models?byOutputModality=TEXT")

    def signed(self, method: str, url: str, body: bytes = b"") -> HttpCall:
        """``url`` exactly as it will be sent, signed now by botocore for service ``bedrock``
        (or carrying the Bedrock API key: ``bearer``).

        Only content-type (with a body), host and the x-amz-* headers are signed, as boto3 does;
        the transport derives the Host header from the URL the same way botocore does.
        """
        if self._bearer_token is not None:
            return self.bearer(method, url, body, self._bearer_token)
        assert self.credentials is not None
        to_sign = {"Content-Type": "application/json"} if body else {}
        aws_request = AWSRequest(method=method, url=url, data=body, headers=to_sign)
        SigV4Auth(self.credentials.frozen(), SIGNING_NAME, self.region).add_auth(aws_request)
        headers = {"accept": "application/json", "user-agent": USER_AGENT}
        headers.update({name.lower(): value for name, value in to_sign.items()})
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            value = aws_request.headers.get(name)
            if value is not None:
                headers[name.lower()] = value
        return HttpCall(method, url, headers, body)

    @staticmethod
    def bearer(method: str, url: str, body: bytes, token: SecretStr) -> HttpCall:
        """A call with ``Authorization: Bearer <Bedrock API key>``, as botocore's BearerAuth
        sends it (bedrock-runtime's service model lists ``smithy.api#httpBearerAuth``), and no
        SigV4 headers. ``from_settings`` has made sure the URLs are HTTPS (or loopback)."""
        headers = {"accept": "application/json", "user-agent": USER_AGENT}
        if body:
            headers["content-type"] = "application/json"
        headers["authorization"] = f"Bearer {token.get_secret_value()}"
        return HttpCall(method, url, headers, body)

    def parse_reply(self, reply: HttpReply) -> ProviderCompletion:
        if reply.status != 200:
            raise classify_error(reply.status, reply.body, reply.headers)
        if self.uses_invoke_model:
            return parse_message(reply.body)
        return parse_converse(reply.body, response_id=reply.headers.get("x-amzn-requestid"))

    def read_probe(self, reply: HttpReply) -> None:
        if reply.status != 200:
            raise classify_error(reply.status, reply.body, reply.headers)
        data = read_json(reply.body)
        if not isinstance(data, dict) or not isinstance(data.get("modelSummaries"), list):
            raise InvalidResponse(
                f"200 from the models list without modelSummaries: {snippet(reply.body)}",
                status_code=200,
            )


def bearer_token(deployment: DeploymentConfig, settings: WorkerSettings) -> SecretStr | None:
    """The Bedrock API key of this deployment: the variable its ``api_key_env`` names (one
    key per deployment, or a key pool), else AWS_BEARER_TOKEN_BEDROCK; None: SigV4."""
    if deployment.api_key_env is None:
        return settings.aws_bearer_token_bedrock
    token = deployment_key(deployment, settings)
    if token is None:
        raise ConfigError(f"unusable: {deployment.key_env} is not set")
    return token


def credential_chain(settings: WorkerSettings) -> AwsCredentialChain:
    """botocore's chain for AWS_PROFILE, with the key pair of the settings first when set."""
    try:
        keys = static_keys(
            settings.aws_access_key_id, settings.aws_secret_access_key, settings.aws_session_token
        )
    except ConfigError as exc:
        return AwsCredentialChain(profile=settings.aws_profile, refusal=str(exc))
    return AwsCredentialChain(profile=settings.aws_profile, static=keys)


def converse_body(request: CompletionRequest) -> dict[str, Any]:
    """The Converse request. System messages go to ``system``; consecutive messages of one role
    are merged into one message of several text blocks, because Converse requires the roles to
    alternate."""
    system = [{"text": m.content} for m in request.messages if m.role == "system"]
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        if messages and messages[-1]["role"] == message.role:
            messages[-1]["content"].append({"text": message.content})
        else:
            messages.append({"role": message.role, "content": [{"text": message.content}]})
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    config: dict[str, Any] = {}
    if request.max_tokens is not None:
        config["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        config["temperature"] = min(request.temperature, MAX_TEMPERATURE)
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if config:
        body["inferenceConfig"] = config
    return body


def parse_converse(raw: bytes, *, response_id: str | None = None) -> ProviderCompletion:
    """Read a 200 Converse response; a body that is not one is invalid_response, never a crash.

    ``model_context_window_exceeded`` is the model running out of context while generating:
    with some text it is a truncated answer (``length``, like ``max_tokens``); with none the
    input filled the window, so it is context_length and another deployment may fit it.
    """
    data = read_json(raw)
    try:
        content = data["output"]["message"]["content"]
        if not isinstance(content, list):
            raise TypeError
    except (KeyError, TypeError):
        raise InvalidResponse(
            f"200 response without output.message.content: {snippet(raw)}", status_code=200
        ) from None
    text = "".join(
        block["text"]
        for block in content
        if isinstance(block, dict) and isinstance(block.get("text"), str)
    )
    reason = data.get("stopReason")
    reason = reason if isinstance(reason, str) else None
    if reason in ("guardrail_intervened", "content_filtered"):
        raise ContentPolicy(
            f"Bedrock withheld the output ({reason})", status_code=200, provider_code=reason
        )
    if reason in ("malformed_model_output", "malformed_tool_use"):
        raise InvalidResponse(
            f"the model produced unusable output ({reason})", status_code=200, provider_code=reason
        )
    if reason == "model_context_window_exceeded":
        if not text:
            raise ContextLength(
                "the input filled the model's context window", status_code=200, provider_code=reason
            )
        finish_reason: FinishReason = "length"
    else:
        finish_reason = _FINISH_REASONS.get(reason or "", "stop")
    return ProviderCompletion(
        text=text,
        finish_reason=finish_reason,
        provider_finish_reason=reason,
        usage=_usage(data.get("usage")),
        response_id=response_id,
    )


def _usage(raw: Any) -> Usage | None:
    """Converse usage, or None when its input and output counts are absent or not sane (as
    ``sane_counts`` reads them). An odd total is recomputed; an odd cache count is dropped."""
    if not isinstance(raw, dict):
        return None
    counts = sane_counts(raw, "inputTokens", "outputTokens")
    if counts is None:
        return None
    prompt, completion = counts
    total = token_count(raw.get("totalTokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion if total is None else total,
        cached_tokens=token_count(raw.get("cacheReadInputTokens")),
    )
