"""Making glibc give the memory of large reply bodies back to the kernel when they are freed.

Why: glibc serves an allocation over ``M_MMAP_THRESHOLD`` (128 KiB) with its own mmap, unmapped
on free, but it raises that threshold to the size of each such block freed (up to 32 MiB), so
after the first large body, the next ones are carved out of the threads' arenas, whose freed
pages mostly stay in the process. Measured with 32 threads reading gzip bombs through the
transport (tests/integration/test_reply_memory.py; baseline 31 MB, 256 MiB budget): peak
RSS 440-645 MB, and 176-239 MB still held after the burst, with the dynamic threshold;
297-313 MB, and 34-36 MB (the baseline) after, with it pinned at 128 KiB: setting it once
stops glibc from moving it.

The cost: a block over 128 KiB is one mmap and munmap each time, which only large bodies and
buffers pay; a completion reply of a few KiB never reaches it.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("turnout.worker")

#: glibc's own default, kept fixed: what setting it (rather than its value) changes.
MMAP_THRESHOLD_BYTES = 128 * 1024
_M_MMAP_THRESHOLD = -3  # malloc.h


def fix_mmap_threshold(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Pin glibc's mmap threshold for this process; False where the C library has no
    ``mallopt`` or refuses it (not glibc). Idempotent."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, threshold_bytes) != 1:
        log.warning("mallopt(M_MMAP_THRESHOLD) refused; large reply bodies may stay in the heap")
        return False
    return True
