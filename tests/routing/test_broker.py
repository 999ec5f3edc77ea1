"""routing.broker: kombu's Redis channel on a blocking pool, one reused client."""

import threading
from typing import cast

from kombu.connection import Connection

from routing.broker import Channel, Transport
from routing.keys import Keys


def test_hundreds_of_threads_acking_at_once_never_fail_for_lack_of_connections(
    redis_url, namespace
):
    connection = Connection(
        redis_url,
        transport=Transport,
        transport_options={"global_keyprefix": Keys(namespace).prefix, "max_connections": 16},
    )
    channel = cast(Channel, connection.default_channel)
    errors: list[str] = []
    start = threading.Barrier(200)

    def ack_like_a_finishing_task():
        start.wait()
        for n in range(20):
            try:
                with channel.conn_or_acquire() as client:
                    client.pipeline().zrem("unacked_index", n).hdel("unacked", n).execute()
            except Exception as exc:
                errors.append(type(exc).__name__)

    threads = [threading.Thread(target=ack_like_a_finishing_task) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    connection.release()
    assert errors == [], f"{len(errors)} of 4000 acks failed: {set(errors)}"
