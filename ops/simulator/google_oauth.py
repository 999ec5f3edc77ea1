"""A Google OAuth2 token endpoint's check of google-auth's JWT-bearer grant: the assertion's
claims (issuer, audience, scope, lifetime) and, given the service account's public key, its RS256
signature. Used by the Vertex simulator to issue tokens the way oauth2.googleapis.com does."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping

from ops.simulator.base import Reply

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: What Google's token endpoint takes as the assertion's ``aud`` (google-auth always sends the
#: first, whatever the file's token_uri says).
TOKEN_AUDIENCES = (
    "https://oauth2.googleapis.com/token",
    "https://www.googleapis.com/oauth2/v4/token",
)
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def oauth_error(error: str, description: str) -> Reply:
    return Reply.json(400, {"error": error, "error_description": description})


def check_assertion(assertion: str, trusted_keys: Mapping[str, str] | None) -> str | None:
    """None for a service-account assertion Google would take; otherwise why not."""
    try:
        header_b64, payload_b64, signature_b64 = assertion.split(".")
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(payload_b64))
        signature = _unb64(signature_b64)
    except ValueError:
        return "Invalid JWT: malformed assertion."
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return "Invalid JWT: malformed assertion."
    now = time.time()
    if header.get("alg") != "RS256":
        return "Invalid JWT: algorithm must be RS256."
    if claims.get("aud") not in TOKEN_AUDIENCES:
        return "Invalid JWT: audience must be https://oauth2.googleapis.com/token."
    if CLOUD_PLATFORM_SCOPE not in str(claims.get("scope", "")).split():
        return "Invalid JWT: the cloud-platform scope is missing."
    if not claims.get("iss") or not isinstance(claims.get("exp"), int) or claims["exp"] < now:
        return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
    if trusted_keys is None:
        return None
    pem = trusted_keys.get(str(header.get("kid")))
    if pem is None or not _verified(pem, f"{header_b64}.{payload_b64}".encode(), signature):
        return "Invalid JWT Signature."
    return None


def _verified(pem: str, signed: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
