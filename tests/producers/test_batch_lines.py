"""Input lines of ``turnout batch`` and the lines it writes, without Redis or workers."""

import json
from dataclasses import replace

import pytest

from producers.batch_lines import (
    BatchItem,
    LineProblem,
    as_jsonl,
    duplicate_custom_ids,
    error_line,
    idempotency_key,
    output_line,
    parse_line,
    written_lines,
)
from producers.openai_format import Route
from routing.config import parse_config
from routing.errors import ErrorClass
from routing.models import (
    Attempt,
    CompletionRequest,
    CompletionResult,
    JobError,
    JobState,
    Usage,
)

CONFIG = parse_config(
    {
        "deployments": [
            {"id": "primary", "provider": "openai", "model": "gpt-4o-mini"},
            {"id": "secondary", "provider": "groq", "model": "llama-3.1-8b-instant"},
        ],
        "aliases": {"small": ["primary"]},
        "policies": {
            "default": {"targets": ["primary", "secondary"]},
            "cheap": {"strategy": "cheapest", "targets": ["primary", "secondary"]},
        },
    },
    source="test.yaml",
)
MESSAGES = [{"role": "user", "content": "Hello"}]


def parse(line, policy=None, line_no=7):
    return parse_line(json.dumps(line), line_no, CONFIG, policy=policy)


def test_an_openai_batch_line_runs_unchanged():
    item = parse(
        {
            "custom_id": "q1",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "cheap", "messages": MESSAGES, "max_tokens": 20},
        }
    )
    assert isinstance(item, BatchItem)
    assert (item.custom_id, item.line_no, item.route) == ("q1", 7, Route(policy="cheap"))
    assert item.request.max_tokens == 20
    assert item.request.messages[0].content == "Hello"


def test_a_plain_line_runs_on_the_default_policy_or_its_model():
    plain = parse({"custom_id": "q2", "messages": MESSAGES, "temperature": 0.2})
    assert isinstance(plain, BatchItem)
    assert plain.route == Route(policy="default")
    assert isinstance(plain.request, CompletionRequest)
    assert plain.request.temperature == 0.2
    aliased = parse({"custom_id": "q3", "messages": MESSAGES, "model": "small"})
    assert isinstance(aliased, BatchItem)
    assert aliased.route == Route(targets=("small",))


def test_policy_names_the_route_of_every_line():
    line = {
        "custom_id": "q1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini-from-an-openai-file", "messages": MESSAGES},
    }
    item = parse(line, policy="cheap")
    assert isinstance(item, BatchItem)
    assert item.route == Route(policy="cheap")
    unknown = parse(line)
    assert isinstance(unknown, LineProblem)
    assert "The model 'gpt-4o-mini-from-an-openai-file' does not exist" in unknown.message


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "a JSON object, not list"),
        ('{"messages": []}', "custom_id: a non-empty string is required"),
        ('{"custom_id": "  ", "messages": []}', "custom_id: a non-empty string is required"),
        ('{"custom_id": "a", "messages": []}', "messages: List should have at least 1 item"),
        ('{"custom_id": "a", "messages": [{"role": "user", "content": " "}]}', "messages.0"),
        (
            '{"custom_id": "a", "messages": [{"role": "user", "content": "x"}], "tool": []}',
            "tool: Extra inputs are not permitted",
        ),
        (
            '{"custom_id": "a", "method": "GET", "url": "/v1/chat/completions", "body": {}}',
            "method: only POST",
        ),
        (
            '{"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {}}',
            "url: only /v1/chat/completions",
        ),
        ('{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions"}', "body: a JSON"),
        (
            '{"custom_id": "a", "messages": [{"role": "user", "content": "x"}], "stream": true}',
            "streaming is not supported",
        ),
    ],
)
def test_an_invalid_line_says_what_and_where(line, says):
    problem = parse_line(line, 12, CONFIG, policy=None)
    assert isinstance(problem, LineProblem)
    assert says in problem.message
    assert str(problem).startswith("line 12")


DEEPLY_NESTED = "[" * 100_000 + "]" * 100_000
#: Python's json refuses integers of more than 4300 digits (sys.get_int_max_str_digits()).
HUGE_INTEGER = "9" * 5000
HELLO = '{"custom_id": "a", "messages": [{"role": "user", "content": "x"}]'


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (HELLO + ', "stop": ' + DEEPLY_NESTED + "}", "nested too deeply to read"),
        (DEEPLY_NESTED, "nested too deeply to read"),
        (HELLO + ', "max_tokens": ' + HUGE_INTEGER + "}", "integer of more than 4300 digits"),
        ('{"custom_id": ' + HUGE_INTEGER + "}", "integer of more than 4300 digits"),
    ],
)
def test_json_the_decoder_refuses_is_a_bad_line_not_a_traceback(line, says):
    problem = parse_line(line, 3, CONFIG, policy=None)
    assert isinstance(problem, LineProblem)
    assert says in problem.message
    assert str(problem).startswith("line 3:")


def test_duplicates_name_the_custom_id_and_its_lines():
    entries = [
        parse({"custom_id": "a", "messages": MESSAGES}, line_no=1),
        parse({"custom_id": "b", "messages": MESSAGES}, line_no=2),
        parse({"custom_id": "a", "messages": []}, line_no=5),  # invalid, still a duplicate
    ]
    assert duplicate_custom_ids(entries) == ["'a' on lines 1, 5"]


def test_the_same_line_into_the_same_output_is_the_same_job():
    item = parse({"custom_id": "a", "messages": MESSAGES})
    again = parse({"custom_id": "a", "messages": MESSAGES}, line_no=99)
    changed = parse({"custom_id": "a", "messages": [{"role": "user", "content": "Bye"}]})
    assert isinstance(item, BatchItem)
    assert isinstance(again, BatchItem)
    assert isinstance(changed, BatchItem)
    key = idempotency_key(item, "/out.jsonl")
    assert key == idempotency_key(again, "/out.jsonl"), "the line number does not matter"
    assert key != idempotency_key(changed, "/out.jsonl")
    assert key != idempotency_key(item, "/other.jsonl")
    assert key != idempotency_key(replace(item, retry_of="failed-job"), "/out.jsonl")
    assert len(key) <= 255
    assert key.isascii()


def result(state, **fields):
    return CompletionResult(job_id="2f1c0000-0000-4000-8000-000000000001", state=state, **fields)


def test_a_succeeded_line_is_openais_batch_output_naming_who_served_it():
    line = output_line(
        "q1",
        result(
            JobState.SUCCEEDED,
            text="Hi there",
            finish_reason="stop",
            deployment="secondary",
            provider="groq",
            model="llama-3.1-8b-instant",
            usage=Usage(prompt_tokens=9, completion_tokens=3, total_tokens=12),
            finished_at=1_700_000_000.5,
        ),
    )
    assert line["id"] == "batch_req_2f1c0000000040008000000000000001"
    assert line["error"] is None
    response = line["response"]
    assert response["status_code"] == 200
    assert response["request_id"] == "2f1c0000-0000-4000-8000-000000000001", "the job id"
    body = response["body"]
    assert (body["object"], body["model"], body["provider"]) == (
        "chat.completion",
        "llama-3.1-8b-instant",
        "groq",
    )
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hi there",
        "refusal": None,
    }
    assert body["usage"]["total_tokens"] == 12
    assert body["created"] == 1_700_000_000


def test_a_failed_line_carries_its_class_and_attempts():
    attempt = Attempt(
        deployment="primary",
        provider="openai",
        model="gpt-4o-mini",
        outcome=ErrorClass.BAD_REQUEST,
        status_code=400,
        started_at=1.0,
    )
    line = error_line(
        "q9",
        result(
            JobState.FAILED,
            error=JobError(error_class=ErrorClass.BAD_REQUEST, message="max_tokens is too large"),
            attempts=[attempt],
        ),
    )
    assert line["error"] == {"code": "bad_request", "message": "max_tokens is too large"}
    assert line["response"]["status_code"] == 400
    assert line["response"]["body"]["error"]["type"] == "invalid_request_error"
    assert [a["outcome"] for a in line["attempts"]] == ["bad_request"]


def test_only_whole_output_lines_count_as_written():
    lines = [
        '{"custom_id": "a", "response": {"request_id": "j1"}}\n',
        '{"custom_id": "b"}\n',  # an input line, say: not the output format
        "not json\n",
        '{"custom_id": "d", "response": {"request_id": ' + HUGE_INTEGER + "}}\n",
        '{"custom_id": "e", "response": ' + DEEPLY_NESTED + "}\n",
        # A whole object a kill left without its newline: the line is written again.
        '{"custom_id": "c", "response": {"request_id": "j3"}}',
    ]
    assert list(written_lines(lines)) == [("a", "j1")]


def test_custom_ids_and_texts_that_utf8_cannot_carry():
    line = '{"custom_id": "q\\udc80", "messages": [{"role": "user", "content": "x"}]}'
    problem = parse_line(line, 3, CONFIG, policy=None)
    assert isinstance(problem, LineProblem)
    assert "unpaired surrogates" in problem.message
    escaped = as_jsonl({"custom_id": "a", "text": "half \udc80 of a pair", "word": "café"})
    assert escaped.encode("utf-8")
    assert json.loads(escaped)["text"] == "half \udc80 of a pair"
    assert "café" in as_jsonl({"word": "café"}), "UTF-8 as is when it can be"


def test_whitespace_stop_sequences_are_allowed():
    item = parse({"custom_id": "a", "messages": MESSAGES, "stop": ["\n\n", " "]})
    assert isinstance(item, BatchItem)
    assert isinstance(item.request, CompletionRequest)
    assert item.request.stop == ["\n\n", " "]
