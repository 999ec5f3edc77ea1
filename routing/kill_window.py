"""A test hook: hold a process inside a window where dying used to lose a job.

Integration tests (tests/integration/test_pop_to_claim_kill.py) set ``TURNOUT_TEST_HOLD`` in
one worker's environment only, to one of:

- ``popped``: after the broker moved a run_job message out of the queue and before its
  unacked bookkeeping (routing.broker), the window in which kombu's plain BRPOP lost it;
- ``claim``: after the message was delivered and before the job's claim (workers.runtime),
  where it sat in kombu's unacked hash until the visibility timeout.

The process logs ``HOLD_LOG`` and sleeps (at most ``HOLD_S``) so the test can SIGKILL it there.
Unset, which is always so outside those tests, the hook is one dictionary lookup.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Literal

ENV = "TURNOUT_TEST_HOLD"
HOLD_LOG = "TEST HOLD: holding"
HOLD_S = 120.0

Window = Literal["popped", "claim"]

log = logging.getLogger("turnout.kill_window")


def hold_if_asked(window: Window, detail: str) -> None:
    if os.environ.get(ENV) != window:
        return
    line = f"{HOLD_LOG} {window} window ({detail}); waiting to be killed"
    log.warning(line)
    print(line, file=sys.stderr, flush=True)
    time.sleep(HOLD_S)
