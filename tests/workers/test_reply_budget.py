"""The worker's reply budget: shared by threads, refused when spent, given back when dropped;
and bodies read and decoded within it (a gzip bomb stops at the budget)."""

import gc
import gzip
import threading
import zlib

import pytest

from routing.errors import ErrorClass, InvalidResponse, ReplyBudgetExhausted
from workers.reply_body import DECODE_STEP, UNCHARGED_BYTES, read_reply_body
from workers.reply_budget import MIB, ReplyBudget, Reservation


def bomb(decoded_bytes: int) -> list[bytes]:
    """A gzip stream of zeros, cut into the 64 KiB chunks a socket gives."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * MIB
    raw = b"".join(compressor.compress(block) for _ in range(decoded_bytes // MIB))
    raw += compressor.flush()
    return [raw[i : i + 65536] for i in range(0, len(raw), 65536)]


def test_threads_racing_for_the_budget_get_exactly_what_fits_and_never_more():
    budget = ReplyBudget(10_000)
    threads = 32
    start, held = threading.Barrier(threads), threading.Barrier(threads)
    granted: list[bool] = []
    peaks: list[int] = []

    def race():
        start.wait()
        for _ in range(2000):  # churn: take and give back, watching the total
            if budget.reserve(700):
                peaks.append(budget.in_use_bytes)
                budget.release(700)
        start.wait()
        ok = budget.reserve(1000)
        granted.append(ok)
        held.wait()  # everyone holds what they got
        if ok:
            budget.release(1000)

    workers = [threading.Thread(target=race) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert max(peaks) <= 10_000
    assert granted.count(True) == 10, "ten of 1000 fit in 10,000, and no more"
    assert budget.in_use_bytes == 0


def test_a_reservation_over_the_budget_is_refused_as_the_workers_overload_and_given_back():
    budget = ReplyBudget(1000)
    first, second = Reservation(budget), Reservation(budget)
    first.take(600)
    with pytest.raises(ReplyBudgetExhausted, match="TURNOUT_REPLY_BUDGET_MB") as refused:
        second.take(500)
    assert refused.value.error_class is ErrorClass.OVERLOADED, "retried after a backoff"
    assert refused.value.route_at_fault is False, "and not held against the provider"
    assert budget.in_use_bytes == 600, "a refusal takes nothing"
    first.give_back()
    second.take(500)
    assert budget.in_use_bytes == 500


def test_a_body_holds_its_bytes_until_it_is_dropped():
    budget = ReplyBudget(MIB)
    body = read_reply_body([b"a" * 1000, b"b" * 500], encoding="", budget=budget, max_bytes=MIB)
    assert body == b"a" * 1000 + b"b" * 500
    assert budget.in_use_bytes == 1500, "the body, not its buffer"
    del body
    gc.collect()
    assert budget.in_use_bytes == 0


def test_an_announced_length_is_taken_at_once_and_a_too_long_one_refused_unread():
    budget = ReplyBudget(MIB)
    size = UNCHARGED_BYTES + 1
    read = []

    def chunks():
        read.append(1)
        yield b"x" * size

    with pytest.raises(InvalidResponse, match="announced"):
        read_reply_body(chunks(), encoding="", budget=budget, max_bytes=size - 1, length=size)
    assert read == []
    body = read_reply_body(chunks(), encoding="", budget=budget, max_bytes=MIB, length=size)
    assert body == b"x" * size
    assert budget.in_use_bytes == size


def test_a_small_reply_in_one_chunk_is_returned_as_it_came_uncharged():
    budget = ReplyBudget(MIB)
    chunk = b'{"choices": []}'
    assert read_reply_body([chunk], encoding="", budget=budget, max_bytes=MIB) is chunk
    assert budget.in_use_bytes == 0
    with pytest.raises(InvalidResponse, match="larger than 10 bytes"):
        read_reply_body([chunk], encoding="", budget=budget, max_bytes=10)


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "deflate"])
def test_compressed_bodies_decode_within_the_budget(encoding):
    payload = b'{"choices": []}' * 10_000
    raw = gzip.compress(payload) if "gzip" in encoding else zlib.compress(payload)
    budget = ReplyBudget(MIB)
    body = read_reply_body([raw[:100], raw[100:]], encoding=encoding, budget=budget, max_bytes=MIB)
    assert body == payload
    assert budget.in_use_bytes == len(payload)


def test_a_gzip_bomb_stops_at_the_budget_having_read_only_what_it_needed():
    budget = ReplyBudget(4 * MIB)
    others = Reservation(budget)
    others.take(MIB)  # other calls hold a quarter of it
    chunks = bomb(1024 * MIB)
    pulled = []

    def stream():
        for chunk in chunks:
            pulled.append(len(chunk))
            yield chunk

    with pytest.raises(ReplyBudgetExhausted):
        read_reply_body(stream(), encoding="gzip", budget=budget, max_bytes=32 * MIB)
    assert len(pulled) == 1 < len(chunks), "3 MiB of zeros is in the first chunk of a 1 GiB bomb"
    assert budget.in_use_bytes == MIB, "the bomb gave back all it took; the others keep theirs"


def test_a_gzip_bomb_stops_at_the_per_call_cap_when_the_budget_is_larger():
    budget = ReplyBudget(256 * MIB)
    with pytest.raises(InvalidResponse, match="decoded response body larger than"):
        read_reply_body(bomb(1024 * MIB), encoding="gzip", budget=budget, max_bytes=2 * MIB)
    assert budget.in_use_bytes == 0
    assert DECODE_STEP <= 2 * MIB


def test_corrupt_and_unasked_encodings_are_invalid_responses_and_take_nothing():
    budget = ReplyBudget(MIB)
    with pytest.raises(InvalidResponse, match="not valid gzip"):
        read_reply_body([b"not gzip at all"], encoding="gzip", budget=budget, max_bytes=MIB)
    with pytest.raises(InvalidResponse, match="did not ask for"):
        read_reply_body([b"x"], encoding="br", budget=budget, max_bytes=MIB)
    assert budget.in_use_bytes == 0


class _LargeErrorBodies:
    """A transport whose every reply is a 500 with a 2 MiB body read within ``budget``."""

    def __init__(self, budget):
        self.budget = budget

    def send(self, call, *, timeout_s):
        from workers.http import HttpReply

        body = read_reply_body(
            [b"<html>" + b"x" * (2 * MIB)], encoding="", budget=self.budget, max_bytes=4 * MIB
        )
        return HttpReply(500, {"content-type": "text/html"}, body, 0.01)

    def close(self):
        pass


def test_a_failed_calls_body_stops_counting_when_the_call_ends_not_at_the_next_collection():
    """A failure's traceback holds the reply in a reference cycle; were its bytes released only
    when the body is collected, failed calls with large error pages would spend the budget of
    healthy ones until a full collection (the review found 40 MiB held that way)."""
    import redis

    from routing.config import parse_config
    from routing.errors import ProviderError
    from routing.jobstore import JobStore
    from routing.keys import Keys
    from routing.models import CompletionRequest
    from routing.planning import routes_of
    from workers.providers.registry import build_adapter
    from workers.redaction import Redactor
    from workers.runtime import WorkerRuntime
    from workers.settings import WorkerSettings

    config = parse_config({"deployments": [{"id": "local", "provider": "ollama", "model": "m"}]})
    settings = WorkerSettings()
    (route,) = routes_of(config.deployments["local"], config)
    budget = ReplyBudget(8 * MIB)
    runtime = WorkerRuntime(
        settings,
        config,
        store=JobStore(redis.Redis(), Keys("t"), ttl_s=60),
        transport=_LargeErrorBodies(budget),
        adapters={route.id: build_adapter(route.deployment, settings)},
        redactor=Redactor(),
    )
    gc.disable()
    try:
        errors = []
        for _ in range(3):
            with pytest.raises(ProviderError) as caught:
                runtime.call_route(route, CompletionRequest.from_prompt("hi"), 5.0)
            errors.append(caught.value)  # kept, as execution keeps its last error
            assert budget.in_use_bytes == 0, "released when the call ended"
    finally:
        gc.enable()


def test_an_announced_length_reserves_at_most_a_megabyte_before_the_bytes_arrive():
    from workers.reply_body import PREALLOCATE_MAX

    budget = ReplyBudget(64 * MIB)
    seen = []

    def stalls_after_one_chunk():
        yield b"y" * (UNCHARGED_BYTES + 10)
        seen.append(budget.in_use_bytes)
        yield b"z" * 10

    read_reply_body(
        stalls_after_one_chunk(), encoding="", budget=budget, max_bytes=40 * MIB, length=32 * MIB
    )
    assert seen == [PREALLOCATE_MAX], "a claimed 32 MiB holds 1 MiB until its bytes arrive"
