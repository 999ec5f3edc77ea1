"""A simulated Vertex AI (../shared/providers.md §6): Gemini's generateContent bodies on Vertex's
paths, behind OAuth2.

It is also its own OAuth2 server: ``POST /token`` takes google-auth's JWT-bearer grant (a service
account file whose ``token_uri`` points here), checks the assertion (ops.simulator.google_oauth)
and issues tokens; the Vertex endpoints accept only tokens it issued and has not revoked, or
``api_key``.
"""

from __future__ import annotations

import re
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ops.simulator import embeddings
from ops.simulator.base import Endpoint, Incoming, Reply, estimate_tokens
from ops.simulator.faults import Faults
from ops.simulator.gemini_sim import GenerateContentSimulator, error_info, rpc_error, texts_of
from ops.simulator.google_oauth import JWT_BEARER, check_assertion, oauth_error


class VertexSimulator(GenerateContentSimulator):
    """{location}-aiplatform.googleapis.com's publisher-model endpoints, and an OAuth2 token
    endpoint. ``trusted_keys`` maps a service account's private_key_id to its PEM public key;
    when given, only assertions signed by one of those keys get a token."""

    protocol = "vertex"
    service = "aiplatform.googleapis.com"
    grant_path = "/token"
    _MODEL = re.compile(
        r"^/(v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
        r"/publishers/(?P<publisher>[^/]+)/models/(?P<model>[^/:]+):(?P<method>\w+)$"
    )

    def __init__(
        self,
        *,
        name: str = "sim",
        api_key: str | None = None,
        faults: Faults | None = None,
        models: list[str] | None = None,
        seed: int | None = None,
        trusted_keys: Mapping[str, str] | None = None,
        token_lifetime_s: int = 3600,
        global_only: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(name=name, api_key=api_key, faults=faults, models=models, seed=seed)
        #: Models served from the ``global`` location only (Gemini 3 previews are): a regional
        #: path for one gets Vertex's 404 for a publisher model it does not have there.
        self.global_only = global_only
        #: The locations the model paths named, in order (what tests read).
        self.locations: list[str] = []
        self.trusted_keys = dict(trusted_keys) if trusted_keys is not None else None
        self.token_lifetime_s = token_lifetime_s
        #: access token -> when it expires (epoch seconds)
        self.issued: dict[str, float] = {}

    def revoke_tokens(self) -> None:
        """Forget every token issued so far (as if they were revoked)."""
        self.issued.clear()

    def match(self, incoming: Incoming) -> Endpoint | None:
        if incoming.method != "POST":
            return None
        if incoming.path == self.grant_path:
            return "probe"  # unauthenticated: ``authenticate`` lets it through
        found = self._MODEL.match(incoming.path)
        if found is None or found["method"] not in ("generateContent", "countTokens", "predict"):
            return None
        incoming.params.update(found.groupdict())
        return "probe" if found["method"] == "countTokens" else "generate"

    def success(self, incoming: Incoming) -> Reply:
        if incoming.params.get("method") == "predict":
            body = embeddings.vertex_predict(incoming.json, incoming.params["model"])
            return Reply.json(200, body)
        return super().success(incoming)

    def authenticate(self, incoming: Incoming) -> Reply | None:
        if incoming.path == self.grant_path:
            return None
        header = incoming.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token:
            return self._unauthenticated("CREDENTIALS_MISSING")
        if self.api_key is not None and token == self.api_key:
            return None
        expires = self.issued.get(token)
        if expires is None:
            return self._unauthenticated("ACCESS_TOKEN_TYPE_UNSUPPORTED")
        if expires <= time.time():
            return self._unauthenticated("ACCESS_TOKEN_EXPIRED")
        return None

    def validate(self, incoming: Incoming) -> Reply | None:
        location, model = incoming.params.get("location"), incoming.params.get("model")
        if location is not None:
            self.locations.append(location)
        if model in self.global_only and location != "global":
            project = incoming.params.get("project")
            return rpc_error(
                404,
                f"Publisher Model `projects/{project}/locations/{location}/publishers/google/"
                f"models/{model}` was not found or your project does not have access to it. "
                "Please ensure you are using a valid model version.",
            )
        if incoming.params.get("method") == "predict":
            problem = embeddings.vertex_problem(incoming.json)
            return None if problem is None else rpc_error(400, problem)
        return super().validate(incoming)

    def _unauthenticated(self, reason: str) -> Reply:
        method = "google.cloud.aiplatform.v1.PredictionService.GenerateContent"
        return rpc_error(401, None, [error_info(reason, self.service, method=method)])

    def _message(self, status: int) -> str | None:
        if status == 429:
            return (
                "Resource exhausted. Please try again later. Please refer to "
                "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more "
                "details."
            )
        if status == 404:
            return (
                f"Publisher Model `publishers/google/models/{self.models[0]}` was not found or "
                "your project does not have access to it."
            )
        return None

    def _decorate(self, body: dict[str, Any]) -> dict[str, Any]:
        body["createTime"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        body["usageMetadata"]["trafficType"] = "ON_DEMAND"
        return body

    def probe(self, incoming: Incoming) -> Reply:
        if incoming.path == self.grant_path:
            return self._grant(incoming)
        problem = self._check_contents(incoming.json if isinstance(incoming.json, dict) else {})
        if problem is not None:
            return problem
        texts = [t for content in incoming.json["contents"] for t in texts_of(content)]
        tokens = sum(estimate_tokens(t) for t in texts)
        return Reply.json(
            200,
            {
                "totalTokens": tokens,
                "totalBillableCharacters": sum(len(t.replace(" ", "")) for t in texts),
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
            },
        )

    def _grant(self, incoming: Incoming) -> Reply:
        """RFC 7523 JWT-bearer grant, answered the way oauth2.googleapis.com/token does."""
        form = dict(urllib.parse.parse_qsl(incoming.body.decode("utf-8", "replace")))
        if form.get("grant_type") != JWT_BEARER:
            return oauth_error("unsupported_grant_type", "Invalid grant_type.")
        problem = check_assertion(form.get("assertion", ""), self.trusted_keys)
        if problem is not None:
            return oauth_error("invalid_grant", problem)
        token = f"ya29.sim-{uuid.uuid4().hex}"
        self.issued[token] = time.time() + self.token_lifetime_s
        body = {"access_token": token, "expires_in": self.token_lifetime_s, "token_type": "Bearer"}
        return Reply.json(200, body)
