"""A simulated AWS Bedrock endpoint (../shared/providers.md §7, §18, §19): Converse, InvokeModel
for Anthropic models, and the control plane's ListFoundationModels as the probe.

It verifies SigV4 for real: botocore recomputes the signature from what was received (method, raw
path with its percent-encoding, query, the headers the Authorization header names, X-Amz-Date and
the body) with the secret of the access key id in the credential scope. A signer that gets the
double encoding of ``%3A`` wrong, signs the wrong service, or leaves the session token unsigned
is refused with the 403 AWS would send, in AWS's error shape: ``{"message": ...}`` plus the
``x-amzn-ErrorType`` and ``x-amzn-RequestId`` headers. Like AWS, a signature mismatch's message
spells out the canonical request (session token included) and the string-to-sign it expected.

``api_key`` is ``"ACCESS_KEY_ID:SECRET_ACCESS_KEY"``, or ``"ACCESS_KEY_ID:SECRET:SESSION_TOKEN"``
for temporary credentials (then the token must be sent, and signed); ``None`` accepts any caller.
``region`` (None: any) is the region the credential scope must name. More credentials are
added with ``add_credentials`` (the STS simulator does so for each set it issues), optionally
with an expiry after which AWS's 403 ``ExpiredTokenException`` answers them. ``bearer_token`` is
a Bedrock API key the simulator accepts as ``Authorization: Bearer``; a wrong one gets the 403
real Bedrock sends ("Authentication failed: Please make sure your API Key is valid.", with a
capital-M ``Message`` [obs, public issue threads]). Model ids are checked only
when ``models`` is given, as Bedrock does: 400 "The provided model identifier is invalid."
"""

from __future__ import annotations

import datetime
import hmac
import re
import urllib.parse
import uuid
from collections import deque
from hashlib import sha256
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ops.simulator import embeddings
from ops.simulator.base import (
    Endpoint,
    Incoming,
    ProviderSimulator,
    Reply,
    estimate_tokens,
    reply_text,
)
from ops.simulator.faults import Faults
from ops.simulator.model_refusals import PREFILL_REFUSAL, claude_refusal
from ops.simulator.quirks import bedrock_overflow

SIGNING_NAME = "bedrock"
#: How far X-Amz-Date may be from the server's clock, as AWS allows.
MAX_SKEW = datetime.timedelta(minutes=5)

_MODEL_PATH = re.compile(r"^/model/(?P<model>[^/]+)/(?P<operation>converse|invoke)$")
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
_BAD_TOKEN = "The security token included in the request is invalid."  # noqa: S105
_EXPIRED_TOKEN = "The security token included in the request is expired"  # noqa: S105
_BAD_API_KEY = "Authentication failed: Please make sure your API Key is valid."
_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)

#: Injected status -> (exception name, message), the names Converse declares for each status.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "1 validation error detected."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified ID."),
    404: ("ResourceNotFoundException", "The specified resource ARN was not found."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    424: ("ModelErrorException", "The model returned an error."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}


def aws_error(status: int, code: str, message: str) -> Reply:
    """An AWS rest-json error: the exception name in the header, the message in the body."""
    error_type = f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    return Reply.json(status, {"message": message}, [(b"x-amzn-ErrorType", error_type.encode())])


def _invalid(message: str) -> Reply:
    return aws_error(400, "ValidationException", message)


class BedrockSimulator(ProviderSimulator):
    protocol = "bedrock"

    def __init__(
        self,
        *,
        name: str = "sim",
        api_key: str | None = None,
        faults: Faults | None = None,
        models: list[str] | None = None,
        seed: int | None = None,
        region: str | None = None,
        bearer_token: str | None = None,
    ) -> None:
        super().__init__(name=name, api_key=api_key, faults=faults, models=models, seed=seed)
        self.region = region
        self.bearer_token = bearer_token
        self.check_models = models is not None
        self.credentials: dict[str, tuple[str, str | None]] = {}
        #: Access key id -> when its session token expires (credentials without one never do).
        self.expiries: dict[str, datetime.datetime] = {}
        #: Every signed request seen, with the verdict: the Authorization value itself is never
        #: recorded, so this is how tests see which headers a client signed.
        self.signatures: deque[dict[str, Any]] = deque(maxlen=50)
        if api_key is not None:
            key_id, _, rest = api_key.partition(":")
            secret, _, token = rest.partition(":")
            self.credentials[key_id] = (secret, token or None)

    def add_credentials(
        self,
        key_id: str,
        secret: str,
        token: str | None = None,
        *,
        expires_at: datetime.datetime | None = None,
    ) -> None:
        """Accept one more set of credentials (thread-safe enough: one dict assignment each)."""
        if expires_at is not None:
            self.expiries[key_id] = expires_at
        self.credentials[key_id] = (secret, token)

    # --- routing ------------------------------------------------------------------------------

    def match(self, incoming: Incoming) -> Endpoint | None:
        if incoming.method == "POST" and _MODEL_PATH.match(incoming.raw_path):
            return "generate"
        if incoming.method == "GET" and incoming.path == "/foundation-models":
            return "probe"
        return None

    def not_found(self, incoming: Incoming) -> Reply:
        return aws_error(
            404, "UnknownOperationException", f"No operation for {incoming.method} {incoming.path}"
        )

    @staticmethod
    def operation(incoming: Incoming) -> tuple[str, str]:
        """(model id, 'converse' | 'invoke'); the id is one percent-encoded path label."""
        found = _MODEL_PATH.match(incoming.raw_path)
        if found is None:
            raise ValueError(f"not a model path: {incoming.raw_path}")
        return urllib.parse.unquote(found["model"]), found["operation"]

    # --- SigV4 ----------------------------------------------------------------------------------

    def authenticate(self, incoming: Incoming) -> Reply | None:
        header = incoming.headers.get("authorization")
        if header is not None and header.startswith("Bearer ") and self.bearer_token is not None:
            return self._check_bearer(incoming, header.removeprefix("Bearer "))
        if self.api_key is None and not self.credentials and self.bearer_token is None:
            return None
        header = incoming.headers.get("authorization")
        if header is None:
            return aws_error(
                403, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        parsed = _AUTHORIZATION.match(header.strip())
        amz_date = incoming.headers.get("x-amz-date", "")
        if parsed is None or not amz_date:
            return aws_error(
                403,
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'Signature', 'SignedHeaders' and an "
                "'X-Amz-Date' header.",
            )
        scope = parsed["credential"].split("/")
        signed = parsed["signed"].split(";")
        if len(scope) != 5 or scope[4] != "aws4_request":
            return aws_error(403, "IncompleteSignatureException", "Malformed credential scope.")
        key_id = scope[0]
        seen = {"method": incoming.method, "raw_path": incoming.raw_path, "key_id": key_id}
        seen |= {"scope": "/".join(scope[1:]), "signed_headers": signed, "verdict": "ok"}
        self.signatures.append(seen)
        refusal = self._verify(incoming, scope, signed, amz_date, parsed["signature"])
        if refusal is None:
            return None
        seen["verdict"] = refusal[0]
        return aws_error(403, *refusal)

    def _check_bearer(self, incoming: Incoming, token: str) -> Reply | None:
        seen = {"method": incoming.method, "raw_path": incoming.raw_path, "key_id": None}
        seen |= {"scheme": "bearer", "verdict": "ok"}
        self.signatures.append(seen)
        assert self.bearer_token is not None
        if hmac.compare_digest(token.encode(), self.bearer_token.encode()):
            return None
        seen["verdict"] = "AccessDeniedException"
        error_type = b"AccessDeniedException:http://internal.amazon.com/coral/com.amazon.bedrock/"
        return Reply.json(403, {"Message": _BAD_API_KEY}, [(b"x-amzn-ErrorType", error_type)])

    def _verify(
        self, incoming: Incoming, scope: list[str], signed: list[str], amz_date: str, given: str
    ) -> tuple[str, str] | None:
        """None for a valid signature, else (exception name, message) of AWS's 403."""
        key_id, date, region, service, _ = scope
        known = self.credentials.get(key_id)
        token = incoming.headers.get("x-amz-security-token")
        if known is None or known[1] != token:
            return "UnrecognizedClientException", _BAD_TOKEN
        expiry = self.expiries.get(key_id)
        if expiry is not None and datetime.datetime.now(datetime.UTC) >= expiry:
            return "ExpiredTokenException", _EXPIRED_TOKEN
        problem = self._scope_problem(date, region, service, amz_date, signed, incoming)
        if problem is not None:
            return "InvalidSignatureException", problem
        canonical, string_to_sign, expected = signing_strings(
            incoming, signed, amz_date, (key_id, known[0]), region
        )
        if not hmac.compare_digest(expected, given):
            return "InvalidSignatureException", (
                f"{_BAD_SIGNATURE}\n\nThe Canonical String for this request should have been\n"
                f"'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
            )
        return None

    def _scope_problem(
        self,
        date: str,
        region: str,
        service: str,
        amz_date: str,
        signed: list[str],
        incoming: Incoming,
    ) -> str | None:
        if service != SIGNING_NAME:
            return f"Credential should be scoped to correct service: '{SIGNING_NAME}'."
        if self.region is not None and region != self.region:
            return f"Credential should be scoped to a valid region, not '{region}'."
        if date != amz_date[:8]:
            return f"Date in Credential scope does not match YYYYMMDD from ISO-8601: {amz_date}."
        try:
            sent = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.UTC
            )
        except ValueError:
            return f"Invalid X-Amz-Date: {amz_date}"
        now = datetime.datetime.now(datetime.UTC)
        if abs(now - sent) > MAX_SKEW:
            return f"Signature expired or not yet current: {amz_date} (now {now:%Y%m%dT%H%M%SZ})."
        must_sign = {"host"} | {name for name in incoming.headers if name.startswith("x-amz-")}
        if missing := sorted(must_sign - set(signed)):
            return f"'{missing[0]}' must be a 'SignedHeader' in the AWS Authorization."
        if absent := [name for name in signed if name not in incoming.headers]:
            return f"Signed header '{absent[0]}' is not in the request."
        checksum = incoming.headers.get("x-amz-content-sha256")
        if checksum is not None and checksum != sha256(incoming.body).hexdigest():
            return "The provided 'x-amz-content-sha256' header does not match what was computed."
        return None

    # --- Converse and InvokeModel ---------------------------------------------------------------

    def validate(self, incoming: Incoming) -> Reply | None:
        model, operation = self.operation(incoming)
        if self.check_models and model not in self.models:
            return _invalid("The provided model identifier is invalid.")
        request = incoming.json
        if operation == "invoke" and embeddings.is_bedrock_embedding_model(model):
            refusal = embeddings.bedrock_problem(request, model)
            return None if refusal is None else _invalid(refusal)
        if not isinstance(request, dict):
            return _invalid("Malformed input request, please reformat your input and try again.")
        problem = (
            _validate_anthropic(request) if operation == "invoke" else _validate_converse(request)
        )
        if problem is None:
            problem = self._refusal(model, operation, request)
        if problem is None and self.state.faults.context_window is not None:
            problem = self._overflow(model, operation, request, self.state.faults.context_window)
        return problem

    @staticmethod
    def _refusal(model: str, operation: str, request: dict[str, Any]) -> Reply | None:
        """Claude's own refusal of a sampling parameter or a prefill, passed through as a
        ValidationException."""
        if operation == "invoke":
            sampling = {name: request.get(name) for name in ("temperature", "top_p", "top_k")}
            prefix = ""
        else:
            config = request.get("inferenceConfig") or {}
            sampling = {name: config.get(name) for name in ("temperature", "topP")}
            prefix = "The model returned the following errors: "
        refused = claude_refusal(model, sampling, request["messages"][-1].get("role"))
        if refused is None:
            return None
        return _invalid(refused if refused == PREFILL_REFUSAL else prefix + refused)

    @staticmethod
    def _overflow(model: str, operation: str, request: dict[str, Any], window: int) -> Reply | None:
        """Bedrock's ValidationException for a prompt the model's window cannot hold."""
        if operation == "invoke":
            texts = [str(m.get("content", "")) for m in request["messages"]]
            texts.append(str(request.get("system", "")))
            max_tokens = int(request["max_tokens"])
        else:
            texts = [str(b.get("text", "")) for m in request["messages"] for b in m["content"]]
            texts += [str(b.get("text", "")) for b in request.get("system") or []]
            max_tokens = int((request.get("inferenceConfig") or {}).get("maxTokens") or 4096)
        prompt_tokens = sum(estimate_tokens(text) for text in texts if text)
        message = bedrock_overflow(model, prompt_tokens, max_tokens, window)
        return None if message is None else _invalid(message)

    def success(self, incoming: Incoming) -> Reply:
        model, operation = self.operation(incoming)
        request = incoming.json
        if operation == "invoke" and embeddings.is_bedrock_embedding_model(model):
            body = embeddings.bedrock_invoke_embed(request, model, str(uuid.uuid4()))
            tokens = embeddings.tokens_of(
                [request["inputText"]] if "inputText" in request else request["texts"]
            )
            return Reply.json(
                200, body, [(b"x-amzn-bedrock-input-token-count", str(tokens).encode())]
            )
        if operation == "invoke":
            return self._anthropic_success(model, request)
        messages = request["messages"]
        prompt = _last_user_text(messages)
        text = reply_text(self.name, model, prompt)
        limit = (request.get("inferenceConfig") or {}).get("maxTokens")
        stop_reason = "end_turn"
        if isinstance(limit, int) and estimate_tokens(text) > limit:
            text, stop_reason = text[: limit * 4], "max_tokens"
        prompt_text = [b.get("text", "") for m in messages for b in m["content"]]
        prompt_text += [b.get("text", "") for b in request.get("system") or []]
        input_tokens = sum(estimate_tokens(str(t)) for t in prompt_text)
        output_tokens = estimate_tokens(text)
        return Reply.json(
            200,
            {
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": stop_reason,
                "usage": {
                    "inputTokens": input_tokens,
                    "outputTokens": output_tokens,
                    "totalTokens": input_tokens + output_tokens,
                },
                "metrics": {"latencyMs": int(self.state.faults.latency_ms)},
            },
        )

    def _anthropic_success(self, model: str, request: dict[str, Any]) -> Reply:
        prompt = _last_user_text(request["messages"])
        text = reply_text(self.name, model, prompt)
        stop_reason = "end_turn"
        if estimate_tokens(text) > request["max_tokens"]:
            text, stop_reason = text[: request["max_tokens"] * 4], "max_tokens"
        input_tokens = sum(estimate_tokens(str(m["content"])) for m in request["messages"])
        return Reply.json(
            200,
            {
                "id": f"msg_bdrk_{uuid.uuid4().hex[:24]}",
                "type": "message",
                "role": "assistant",
                "model": _anthropic_model_name(model),
                "content": [{"type": "text", "text": text}],
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": estimate_tokens(text)},
            },
        )

    def malformed(self) -> Reply:
        return Reply(200, b'{"output": {"message": {"role": "assistant", "content": [')

    def error(self, status: int, faults: Faults) -> Reply:
        code, message = _ERRORS.get(
            status,
            ("InternalServerException" if status >= 500 else "UnknownOperationException", "Error"),
        )
        reply = aws_error(status, code, message)
        if faults.retry_after_s is not None:
            milliseconds = str(int(faults.retry_after_s * 1000)).encode()
            reply.headers.append((b"x-amz-retry-after", milliseconds))
        return reply

    def probe(self, incoming: Incoming) -> Reply:
        region = self.region or "us-east-1"
        summaries = [
            {
                "modelArn": f"arn:aws:bedrock:{region}::foundation-model/{model}",
                "modelId": model,
                "modelName": model,
                "providerName": model.split(".", 1)[0],
                "inputModalities": ["TEXT"],
                "outputModalities": ["TEXT"],
                "responseStreamingSupported": True,
                "customizationsSupported": [],
                "inferenceTypesSupported": ["ON_DEMAND"],
                "modelLifecycle": {"status": "ACTIVE"},
            }
            for model in self.models
        ]
        return Reply.json(200, {"modelSummaries": summaries})

    def response_headers(
        self, incoming: Incoming, processing_s: float
    ) -> list[tuple[bytes, bytes]]:
        return [(b"x-amzn-RequestId", str(uuid.uuid4()).encode())]


def signing_strings(
    incoming: Incoming,
    signed: list[str],
    amz_date: str,
    key: tuple[str, str],
    region: str,
    service: str = SIGNING_NAME,
) -> tuple[str, str, str]:
    """(canonical request, string-to-sign, signature) as botocore computes them for what was
    received (its canonical request re-encodes the raw path, so a ``%3A`` on the wire is
    ``%253A`` in it, as AWS does for non-S3 services)."""
    host = incoming.headers.get("host", "localhost")
    query = f"?{incoming.raw_query}" if incoming.raw_query else ""
    request = AWSRequest(
        method=incoming.method,
        url=f"http://{host}{incoming.raw_path}{query}",
        data=incoming.body,
        headers={name: incoming.headers[name] for name in signed},
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(key[0], key[1]), service, region)
    canonical: str = signer.canonical_request(request)
    string_to_sign: str = signer.string_to_sign(request, canonical)
    signature: str = signer.signature(string_to_sign, request)
    return canonical, string_to_sign, signature


def _anthropic_model_name(model: str) -> str:
    """What InvokeModel reports: ``anthropic.claude-3-haiku-20240307-v1:0`` is
    ``claude-3-haiku-20240307``."""
    label = model.rsplit("/", 1)[-1]
    name = label.split("anthropic.", 1)[-1]
    return re.sub(r"-v\d+(:\d+)?$", "", name)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        return "".join(
            str(block.get("text", "")) for block in content or [] if isinstance(block, dict)
        )
    return ""


def _validate_converse(request: dict[str, Any]) -> Reply | None:
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return _invalid(
            "1 validation error detected: Value null at 'messages' failed to satisfy "
            "constraint: Member must not be null"
        )
    previous = None
    for index, message in enumerate(messages, start=1):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return _invalid(
                f"1 validation error detected: Value '{role}' at 'messages.{index}.member.role' "
                "failed to satisfy constraint: Member must satisfy enum value set: "
                "[user, assistant]"
            )
        if index == 1 and role != "user":
            return _invalid("A conversation must start with a user message.")
        if role == previous:
            return _invalid("A conversation must alternate between user and assistant roles.")
        previous = role
        content = message.get("content")
        if not isinstance(content, list) or not content:
            return _invalid(
                f"The content field in the Message object at messages.{index - 1} is empty."
            )
        if not all(
            isinstance(block, dict) and isinstance(block.get("text"), str) for block in content
        ):
            return _invalid(f"messages.{index - 1}.content has a block the simulator cannot read.")
    config = request.get("inferenceConfig") or {}
    limit = config.get("maxTokens")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        return _invalid(
            f"1 validation error detected: Value '{limit}' at 'inferenceConfig.maxTokens' failed "
            "to satisfy constraint: Member must have value greater than or equal to 1"
        )
    return None


def _validate_anthropic(request: dict[str, Any]) -> Reply | None:
    """InvokeModel's Anthropic body: anthropic_version and max_tokens required, no model."""
    for key in ("anthropic_version", "max_tokens", "messages"):
        if key not in request:
            return _invalid(
                f"Malformed input request: #: required key [{key}] not found, please reformat "
                "your input and try again."
            )
    if "model" in request:
        return _invalid(
            "Malformed input request: #: extraneous key [model] is not permitted, please "
            "reformat your input and try again."
        )
    if not isinstance(request["max_tokens"], int) or request["max_tokens"] < 1:
        return _invalid("Malformed input request: #/max_tokens: must be at least 1")
    messages = request["messages"]
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in messages)
    ):
        return _invalid("Malformed input request: #/messages: expected user/assistant turns")
    return None
