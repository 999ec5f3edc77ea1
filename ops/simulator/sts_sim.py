"""A simulated AWS STS endpoint: AssumeRole, for the Bedrock credential-chain tests.

botocore's AssumeRole provider (a profile with ``role_arn`` and ``source_profile``) calls
STS with the source profile's keys; pointed here by ``AWS_ENDPOINT_URL_STS`` (or the profile's
``endpoint_url``) it gets what STS answers: the query protocol's form body in, the
``AssumeRoleResponse`` XML out. The request's SigV4 signature (service ``sts``) is verified as
the Bedrock simulator verifies its own, with the source keys; a wrong one, or a role not in
``roles``, gets STS's XML ``ErrorResponse``.

It also serves container credentials (``container_token``), the JSON botocore's
ContainerProvider reads, and IAM Identity Center role credentials (``sso_token``). Each set of
credentials it issues is registered with the Bedrock simulator it serves
(``BedrockSimulator.add_credentials``), expiring after ``lifetime_s``, so a worker whose
credentials are not refreshed in time is refused with ``ExpiredTokenException``.
"""

from __future__ import annotations

import datetime
import hmac
import secrets
import urllib.parse
import uuid
from xml.sax.saxutils import escape

from ops.simulator.base import Endpoint, Incoming, ProviderSimulator, Reply
from ops.simulator.bedrock_sim import _AUTHORIZATION, BedrockSimulator, signing_strings
from ops.simulator.faults import Faults

_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
#: Where the container credentials endpoint answers.
CONTAINER_PATH = "/v1/credentials"
#: IAM Identity Center's GetRoleCredentials.
SSO_PATH = "/federation/credentials"


def sts_error(status: int, code: str, message: str) -> Reply:
    body = (
        f'<ErrorResponse xmlns="{_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return Reply(status, body.encode(), [(b"content-type", b"text/xml")])


class StsSimulator(ProviderSimulator):
    """AssumeRole for ``roles``, signed with ``source`` (access key id, secret)."""

    protocol = "sts"

    def __init__(
        self,
        *,
        source: tuple[str, str],
        roles: list[str],
        issue_to: BedrockSimulator,
        lifetime_s: float = 3600.0,
        faults: Faults | None = None,
        container_token: str | None = None,
        sso_token: str | None = None,
    ) -> None:
        super().__init__(name="sts", api_key=None, faults=faults)
        self.source = source
        self.roles = set(roles)
        self.issue_to = issue_to
        self.lifetime_s = lifetime_s
        #: Set: also serve container credentials at CONTAINER_PATH to this token.
        self.container_token = container_token
        #: Set: also serve SSO GetRoleCredentials at SSO_PATH to this access token.
        self.sso_token = sso_token
        #: Access key ids issued, in order (what tests count).
        self.issued: list[str] = []
        #: The secret keys and session tokens issued: what tests look for in logs and Redis.
        self.secrets: list[str] = []

    def _form(self, incoming: Incoming) -> dict[str, str]:
        pairs = urllib.parse.parse_qsl(incoming.body.decode(errors="replace"))
        return dict(pairs)

    def match(self, incoming: Incoming) -> Endpoint | None:
        if incoming.method == "POST" and incoming.path == "/":
            return "generate"
        if incoming.method == "GET" and incoming.path in (CONTAINER_PATH, SSO_PATH):
            return "probe"
        return None

    def authenticate(self, incoming: Incoming) -> Reply | None:
        if incoming.path in (CONTAINER_PATH, SSO_PATH):
            return None  # their own token headers, checked in probe()
        parsed = _AUTHORIZATION.match(incoming.headers.get("authorization", "").strip())
        amz_date = incoming.headers.get("x-amz-date", "")
        if parsed is None or not amz_date:
            return sts_error(403, "MissingAuthenticationToken", "Request is missing a signature")
        scope = parsed["credential"].split("/")
        if len(scope) != 5 or scope[0] != self.source[0] or scope[3] != "sts":
            return sts_error(
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        signed = parsed["signed"].split(";")
        _, _, expected = signing_strings(
            incoming, signed, amz_date, self.source, scope[2], service="sts"
        )
        if not hmac.compare_digest(expected, parsed["signature"]):
            return sts_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        return None

    def validate(self, incoming: Incoming) -> Reply | None:
        form = self._form(incoming)
        if form.get("Action") != "AssumeRole":
            return sts_error(400, "InvalidAction", f"Could not find operation {form.get('Action')}")
        if form.get("RoleArn") not in self.roles:
            return sts_error(
                403,
                "AccessDenied",
                f"User: arn:aws:iam::123456789012:user/source is not authorized to perform: "
                f"sts:AssumeRole on resource: {form.get('RoleArn')}",
            )
        return None

    def success(self, incoming: Incoming) -> Reply:
        form = self._form(incoming)
        key_id, secret, token, expires = self._issue()
        role = form["RoleArn"]
        session = form.get("RoleSessionName", "session")
        body = (
            f'<AssumeRoleResponse xmlns="{_NS}"><AssumeRoleResult>'
            f"<Credentials><AccessKeyId>{key_id}</AccessKeyId>"
            f"<SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken>"
            f"<Expiration>{expires:%Y-%m-%dT%H:%M:%SZ}</Expiration></Credentials>"
            f"<AssumedRoleUser><AssumedRoleId>AROASIM:{escape(session)}</AssumedRoleId>"
            f"<Arn>{escape(role)}/{escape(session)}</Arn></AssumedRoleUser>"
            f"</AssumeRoleResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
            f"</ResponseMetadata></AssumeRoleResponse>"
        )
        return Reply(200, body.encode(), [(b"content-type", b"text/xml")])

    def probe(self, incoming: Incoming) -> Reply:
        """The container credentials endpoint (ECS, EKS Pod Identity) botocore's
        ContainerProvider reads through AWS_CONTAINER_CREDENTIALS_FULL_URI, with
        AWS_CONTAINER_AUTHORIZATION_TOKEN in ``Authorization``; or IAM Identity Center's
        GetRoleCredentials (the SSO portal), which botocore's SSOProvider calls with the
        cached SSO access token in ``x-amz-sso_bearer_token``."""
        if incoming.path == SSO_PATH:
            return self._sso_role_credentials(incoming)
        if self.container_token is None or incoming.headers.get("authorization") != (
            self.container_token
        ):
            return Reply.json(401, {"message": "unauthorized"})
        key_id, secret, token, expires = self._issue()
        body = {
            "AccessKeyId": key_id,
            "SecretAccessKey": secret,
            "Token": token,
            "Expiration": f"{expires:%Y-%m-%dT%H:%M:%SZ}",
            "RoleArn": next(iter(self.roles), ""),
        }
        return Reply.json(200, body)

    def _sso_role_credentials(self, incoming: Incoming) -> Reply:
        if self.sso_token is None or incoming.headers.get("x-amz-sso_bearer_token") != (
            self.sso_token
        ):
            return Reply.json(
                401,
                {"message": "Session token not found or invalid"},
                [(b"x-amzn-ErrorType", b"UnauthorizedException")],
            )
        key_id, secret, token, expires = self._issue()
        credentials = {
            "accessKeyId": key_id,
            "secretAccessKey": secret,
            "sessionToken": token,
            "expiration": int(expires.timestamp() * 1000),
        }
        return Reply.json(200, {"roleCredentials": credentials})

    def _issue(self) -> tuple[str, str, str, datetime.datetime]:
        key_id = f"ASIA{secrets.token_hex(8).upper()}"
        secret = secrets.token_urlsafe(30)
        token = f"IQoJsimulated{secrets.token_urlsafe(48)}"
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=self.lifetime_s)
        self.issue_to.add_credentials(key_id, secret, token, expires_at=expires)
        self.issued.append(key_id)
        self.secrets += [secret, token]
        return key_id, secret, token, expires

    def error(self, status: int, faults: Faults) -> Reply:
        return sts_error(status, "ServiceUnavailable", "Service unavailable")
