"""A FastAPI app that hands its LLM calls to turnout, on the asyncio client.

    uvicorn examples.fastapi_app:app        # REDIS_URL, TURNOUT_CONFIG (, TURNOUT_NAMESPACE)

POST /summarise        {"text": ...}  waits for the summary: 200, or 400 / 502 / 504
POST /summaries        {"text": ...}  202 at once, with the job id
GET  /summaries/{id}                  the job as it stands: queued, running, succeeded, failed

Waiting never blocks the event loop, and the provider call, its retries and its failover run on
a worker: a request that times out here leaves its job running, to be fetched by its id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from producers import (
    Client,
    CompletionResult,
    InvalidRequest,
    JobFailed,
    JobNotFound,
    JobTimeout,
    SubmitError,
)

#: How long a request waits for its summary before answering 504 (the job runs on regardless).
WAIT_S = 30.0


class SummaryRequest(BaseModel):
    text: str
    max_tokens: int = 256


class Summary(BaseModel):
    job_id: str
    state: str
    text: str | None = None
    deployment: str | None = None
    error_class: str | None = None

    @classmethod
    def of(cls, result: CompletionResult) -> Summary:
        return cls(
            job_id=result.job_id,
            state=result.state.value,
            text=result.text,
            deployment=result.deployment,
            error_class=result.error.error_class.value if result.error else None,
        )


def completion(body: SummaryRequest) -> Mapping[str, Any]:
    """A plain dict: turnout validates it, and InvalidRequest says what is wrong with it."""
    return {
        "messages": [
            {"role": "system", "content": "Summarise the user's text in one sentence."},
            {"role": "user", "content": body.text},
        ],
        "max_tokens": body.max_tokens,
    }


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    client = Client()  # one per app, shared by every request; REDIS_URL, TURNOUT_CONFIG
    app.state.turnout = client
    yield
    await client.aclose()  # this event loop's connections
    client.close()


app = FastAPI(title="summaries, through turnout", lifespan=lifespan)


def turnout(request: Request) -> Client:
    client: Client = request.app.state.turnout
    return client


Turnout = Annotated[Client, Depends(turnout)]


@app.post("/summarise")
async def summarise(body: SummaryRequest, client: Turnout) -> Summary:
    result = await client.acomplete(completion(body), policy="default", timeout=WAIT_S)
    return Summary.of(result)


@app.post("/summaries", status_code=status.HTTP_202_ACCEPTED)
async def start_summary(body: SummaryRequest, client: Turnout) -> Summary:
    handle = await client.asubmit(completion(body), policy="default")
    return Summary(job_id=handle.job_id, state="queued")


@app.get("/summaries/{job_id}")
async def get_summary(job_id: str, client: Turnout) -> Summary:
    try:
        return Summary.of(await client.ajob(job_id).result())
    except JobNotFound as exc:  # never submitted, or expired
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@app.exception_handler(InvalidRequest)
async def invalid_request(request: Request, exc: InvalidRequest) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status.HTTP_400_BAD_REQUEST)


@app.exception_handler(JobFailed)
async def job_failed(request: Request, exc: JobFailed) -> JSONResponse:
    body = {**Summary.of(exc.result).model_dump(), "detail": str(exc)}
    return JSONResponse(body, status.HTTP_502_BAD_GATEWAY)


@app.exception_handler(JobTimeout)
async def job_timeout(request: Request, exc: JobTimeout) -> JSONResponse:
    body = {"detail": str(exc), "job_id": exc.job_id, "poll": f"/summaries/{exc.job_id}"}
    return JSONResponse(body, status.HTTP_504_GATEWAY_TIMEOUT)


@app.exception_handler(SubmitError)
async def submit_error(request: Request, exc: SubmitError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status.HTTP_503_SERVICE_UNAVAILABLE)
