"""A burst of concurrent calls through the real transport, built as a worker builds it, in a
process of its own whose memory is measured: ``python -m tests.integration.reply_burst URL``.

Prints one JSON line: resident set before the burst, at its peak and after it (MB, from
/proc/self/status), and how each call ended.
"""

from __future__ import annotations

import argparse
import gc
import json
import threading
import time
from collections import Counter

from workers.http import HttpCall, HttpcoreTransport, HttpReply
from workers.malloc_tuning import fix_mmap_threshold
from workers.reply_budget import MIB, ReplyBudget


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise LookupError(field)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--budget-mb", type=int, default=256)
    parser.add_argument("--hold", action="store_true", help="keep replies until all are in")
    args = parser.parse_args()

    fix_mmap_threshold()
    transport = HttpcoreTransport(reply_budget=ReplyBudget(args.budget_mb * MIB))
    base = args.url.rsplit("/", 1)[0]
    outcomes: Counter[str] = Counter()
    held: list[HttpReply] = []
    warm, done = threading.Barrier(args.threads + 1), threading.Barrier(args.threads + 1)
    go, release = threading.Event(), threading.Event()

    def one() -> None:
        transport.send(HttpCall("POST", f"{base}/small", {}, b"{}"), timeout_s=30)
        warm.wait()  # each thread's pool is connected before the baseline is read
        go.wait()
        try:
            reply = transport.send(HttpCall("POST", args.url, {}, b"{}"), timeout_s=60)
            outcomes["ok"] += 1
            if args.hold:
                held.append(reply)
            del reply
        except Exception as exc:
            outcomes[type(exc).__name__] += 1
        done.wait()
        release.wait()

    threads = [threading.Thread(target=one) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    warm.wait()
    gc.collect()
    before = rss_mb()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak (VmHWM) starts again from here
    go.set()
    done.wait()
    peak = rss_mb("VmHWM")
    in_use_at_end = transport.reply_budget.in_use_bytes
    held.clear()
    release.set()
    for thread in threads:
        thread.join()
    gc.collect()
    time.sleep(0.2)
    report = {
        "before_mb": round(before, 1),
        "peak_mb": round(peak, 1),
        "after_mb": round(rss_mb(), 1),
        "budget_in_use_at_end": in_use_at_end,
        "budget_in_use_after": transport.reply_budget.in_use_bytes,
        "outcomes": dict(outcomes),
    }
    transport.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
