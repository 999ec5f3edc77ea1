"""Redis's clock, for readers of the time buckets the scripts keep (routing.keys).

Scripts count into the minute and the UTC day of Redis's ``TIME``; a reader that picked the
bucket with its own clock would read yesterday's (or an empty) hash whenever the two clocks sit
on either side of a boundary. Readers ask Redis the time instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from routing.keys import DAY_MS, MINUTE_MS


@dataclass(frozen=True)
class RedisTime:
    """One reading of Redis's ``TIME``, in ms since the epoch."""

    ms: int

    @property
    def seconds(self) -> float:
        return self.ms / 1000

    @property
    def minute(self) -> int:
        """The minute bucket number the scripts would count into now."""
        return self.ms // MINUTE_MS

    @property
    def day(self) -> int:
        """The UTC day bucket number the scripts would count into now."""
        return self.ms // DAY_MS


def redis_time(client: redis.Redis) -> RedisTime:
    seconds, micros = client.time()
    return RedisTime(int(seconds) * 1000 + int(micros) // 1000)
