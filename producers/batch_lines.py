"""The lines of ``turnout batch``: what an input line may say, what an output line says, and what
a previous run already wrote. Pure: producers.batch_plan reads the files, batch_files writes them.

Input, one JSON object per line, in either shape:

* OpenAI's Batch API: ``{"custom_id", "method": "POST", "url": "/v1/chat/completions",
  "body": {chat completion request}}``, so a file prepared for OpenAI runs unchanged;
* plain: ``{"custom_id", "messages": [...], ...}``: the body's fields beside the custom_id.

A line whose ``url`` is ``/v1/embeddings`` (or a plain line with ``input`` and no ``messages``)
is an embeddings job: its body is OpenAI's embeddings request, its output line OpenAI's list of
vectors (producers.openai_embeddings).

A body's ``model`` names a policy, a deployment or an alias of the config (producers.
openai_format); ``--policy`` names one for every line instead; a plain line with neither runs on
the ``default`` policy.

Output is OpenAI's Batch output format: succeeded lines in the output file, failed ones in
``<output>.errors.jsonl`` with their error class and attempt log. An invalid input line goes to
the errors file too (``invalid_line``: its line number and why, no response), so an unattended
run leaves every line it did not run on disk, not only on stderr.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from producers.openai_embeddings import EMBEDDINGS_URL, EmbeddingsBody, embeddings_answer
from producers.openai_format import (
    ChatCompletionRequest,
    Route,
    chat_completion,
    describe,
    failed_job_body,
    route_of,
)
from routing.config import TurnoutConfig
from routing.embeddings import JobRequest
from routing.errors import InvalidRequest
from routing.models import CompletionResult

CHAT_COMPLETIONS_URL = "/v1/chat/completions"
MAX_CUSTOM_ID_CHARS = 512
DEFAULT_POLICY = "default"


@dataclass(frozen=True)
class BatchItem:
    """A valid input line, ready to submit."""

    line_no: int
    custom_id: str
    request: JobRequest
    route: Route
    #: The job id of this line's last failure, when it runs again (``--retry-failed``).
    retry_of: str | None = None


@dataclass(frozen=True)
class LineProblem:
    line_no: int
    message: str
    custom_id: str | None = None

    def __str__(self) -> str:
        named = f" (custom_id {self.custom_id!r})" if self.custom_id is not None else ""
        return f"line {self.line_no}{named}: {self.message}"


def parse_line(
    text: str, line_no: int, config: TurnoutConfig, *, policy: str | None
) -> BatchItem | LineProblem:
    """One input line as an item, or what is wrong with it (with its number)."""
    data = _json_of(text)
    if isinstance(data, _Unreadable):
        return LineProblem(line_no, data.reason)
    if not isinstance(data, dict):
        return LineProblem(line_no, f"a line is a JSON object, not {type(data).__name__}")
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id.strip():
        return LineProblem(line_no, "custom_id: a non-empty string is required")
    if len(custom_id) > MAX_CUSTOM_ID_CHARS:
        return LineProblem(line_no, f"custom_id: longer than {MAX_CUSTOM_ID_CHARS} characters")
    if not custom_id.isprintable() or _has_surrogates(custom_id):
        return LineProblem(line_no, "custom_id: control characters or unpaired surrogates")
    try:
        url, body = _body_of(data)
        if policy is None:
            body.setdefault("model", DEFAULT_POLICY)
        else:
            body["model"] = policy  # --policy names the route of every line
        if url == EMBEDDINGS_URL or (url is None and "input" in body and "messages" not in body):
            embeddings = EmbeddingsBody.model_validate(body)
            return BatchItem(
                line_no,
                custom_id,
                embeddings.to_embedding_request(),
                route_of(config, embeddings.model),
            )
        chat = ChatCompletionRequest.model_validate(body)
        return BatchItem(
            line_no, custom_id, chat.to_completion_request(), route_of(config, chat.model)
        )
    except ValidationError as exc:
        return LineProblem(line_no, describe(exc), custom_id)
    except InvalidRequest as exc:
        return LineProblem(line_no, str(exc), custom_id)


@dataclass(frozen=True)
class _Unreadable:
    reason: str


def _json_of(text: str) -> Any:
    """The line's JSON value, or why it cannot be read. Valid JSON that Python's decoder still
    refuses is a bad line like any other, never a traceback that ends the run: nesting deeper
    than the interpreter's recursion limit (RecursionError) and an integer of more digits than
    ``sys.get_int_max_str_digits()`` (ValueError; the limit stops a quadratic conversion)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return _Unreadable(f"not JSON ({exc.msg} at column {exc.colno})")
    except RecursionError:
        return _Unreadable("nested too deeply to read; a request is a few levels deep")
    except ValueError:
        limit = sys.get_int_max_str_digits()
        return _Unreadable(f"holds an integer of more than {limit} digits, too long to read")


def _body_of(data: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The line's url (None: a plain line) and its request body."""
    if not {"body", "method", "url"} & data.keys():
        return None, {k: v for k, v in data.items() if k != "custom_id"}
    extra = sorted(data.keys() - {"custom_id", "method", "url", "body"})
    if extra:
        raise InvalidRequest(f"unknown field{'s' if len(extra) > 1 else ''}: {', '.join(extra)}")
    if data.get("method") != "POST":
        raise InvalidRequest(f"method: only POST is supported, got {data.get('method')!r}")
    url = data.get("url")
    if url not in (CHAT_COMPLETIONS_URL, EMBEDDINGS_URL):
        raise InvalidRequest(
            f"url: only {CHAT_COMPLETIONS_URL} and {EMBEDDINGS_URL} are supported, got {url!r}"
        )
    body = data.get("body")
    if not isinstance(body, dict):
        raise InvalidRequest("body: a JSON object (the request) is required")
    return str(url), dict(body)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def duplicate_custom_ids(items: Iterable[BatchItem | LineProblem]) -> list[str]:
    """Each custom_id used on more than one line: ``'q1' on lines 3, 17``."""
    lines: dict[str, list[int]] = {}
    for item in items:
        if item.custom_id is not None:
            lines.setdefault(item.custom_id, []).append(item.line_no)
    return [
        f"{custom_id!r} on lines {', '.join(map(str, numbers))}"
        for custom_id, numbers in lines.items()
        if len(numbers) > 1
    ]


def idempotency_key(item: BatchItem, output_identity: str) -> str:
    """The same line run again into the same output names the same job, so a rerun after a crash
    waits for the jobs the first run submitted instead of running them twice; a changed request,
    another output file, or a retry of a failed line (salted with the failed job) is a new job."""
    material = json.dumps(
        {
            "output": output_identity,
            "retry_of": item.retry_of,
            "custom_id": item.custom_id,
            "request": item.request.model_dump(mode="json", exclude={"idempotency_key"}),
            "policy": item.route.policy,
            "targets": list(item.route.targets),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return "batch-" + hashlib.sha256(material.encode()).hexdigest()


# --- output ---------------------------------------------------------------------------------


def output_line(custom_id: str, result: CompletionResult) -> dict[str, Any]:
    """A succeeded job in OpenAI's Batch output format."""
    return {
        "id": _request_id(result),
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": result.job_id,
            "body": (
                embeddings_answer(result)
                if result.embeddings is not None
                else chat_completion(result)
            ),
        },
        "error": None,
    }


def error_line(custom_id: str, result: CompletionResult) -> dict[str, Any]:
    """A failed job as OpenAI writes a failed request, plus turnout's class and attempt log."""
    status, body = failed_job_body(result)
    error = body["error"]
    return {
        "id": _request_id(result),
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": result.job_id, "body": body},
        "error": {
            "code": result.error.error_class.value if result.error else "internal",
            "message": error["message"],
        },
        "attempts": [a.model_dump(mode="json") for a in result.attempts],
    }


def invalid_line(problem: LineProblem) -> dict[str, Any]:
    """An input line that was not run, for the errors file: no job, so no response (and so
    ``written_lines`` does not count it as done: fixed, it runs on the next run)."""
    return {
        "id": None,
        "custom_id": problem.custom_id,
        "line": problem.line_no,
        "response": None,
        "error": {"code": "invalid_line", "message": problem.message},
    }


def reported_problems(lines: Iterable[str]) -> set[tuple[int, str]]:
    """``(line, message)`` of each invalid line a previous run wrote, so a run again does not
    write the same one twice."""
    reported = set()
    for text in lines:
        data = _json_of(text) if text.endswith("\n") else None
        if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
            continue
        line, message = data.get("line"), data["error"].get("message")
        if data["error"].get("code") == "invalid_line" and isinstance(line, int):
            reported.add((line, str(message)))
    return reported


def _request_id(result: CompletionResult) -> str:
    return "batch_req_" + result.job_id.replace("-", "")


def as_jsonl(line: dict[str, Any]) -> str:
    """One line, UTF-8 as is; escaped to ASCII only when the text has unpaired surrogates
    (JSON allows them escaped; UTF-8 cannot carry them)."""
    text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
    if _has_surrogates(text):
        text = json.dumps(line, separators=(",", ":"))
    return text + "\n"


def written_lines(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(custom_id, job id)`` of each line a previous run wrote: whole lines (a newline ends
    each) in the output format, whose job id is the response's request_id."""
    for text in lines:
        if not text.endswith("\n"):
            continue  # cut short by a kill: its job is looked up again, the line rewritten
        data = _json_of(text)
        if not isinstance(data, dict):
            continue
        custom_id, response = data.get("custom_id"), data.get("response")
        job_id = response.get("request_id") if isinstance(response, dict) else None
        if isinstance(custom_id, str) and isinstance(job_id, str):
            yield custom_id, job_id
