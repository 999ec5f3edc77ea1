"""One embeddings call: the embedder of the route's protocol builds it, the worker's transport
sends it, the embedder reads the reply. The twin of ``workers.exchange`` for embeddings jobs
(no provider's embeddings run in the background, so there is no polling here)."""

from __future__ import annotations

from routing.embeddings import EmbeddingRequest, ProviderEmbedding
from routing.errors import InvalidResponse, ProviderError
from workers.http import HttpTransport
from workers.providers.base import ProviderAdapter
from workers.providers.embedding import NoEmbeddings, embedder_for
from workers.providers.wrong_address import check_address
from workers.reply_budget import release_body


def call_embedder(
    transport: HttpTransport,
    adapter: ProviderAdapter,
    request: EmbeddingRequest,
    timeout_s: float,
) -> ProviderEmbedding:
    deployment = adapter.deployment
    embedder = embedder_for(adapter)
    if embedder is None:
        raise NoEmbeddings(
            f"{deployment.id}: turnout does not embed on {deployment.provider} "
            f"({deployment.wire_protocol} protocol)"
        )
    call = embedder.build_call(request)
    reply = transport.send(call, timeout_s=timeout_s)
    try:
        check_address(call, reply)
        return embedder.parse_reply(reply, request)
    except ProviderError as exc:
        # Its traceback holds this frame, and so the body: keep neither past the call.
        raise exc.with_traceback(None) from None
    except Exception as exc:  # a reply the embedder cannot read is the provider's fault
        raise InvalidResponse(
            f"{reply.status} from {deployment.provider} could not be read: "
            f"{type(exc).__name__}: {exc}",
            status_code=reply.status,
        ) from None
    finally:
        release_body(reply.body)
