"""routing.broker: kombu's Redis channel on a blocking pool, one reused client."""

import threading
import time
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


def _connection(redis_url, namespace):
    return Connection(
        redis_url, transport=Transport, transport_options={"global_keyprefix": f"{namespace}:"}
    )


def _jobs_queue():
    from kombu.entity import Exchange, Queue

    return Queue("jobs", Exchange("jobs"), routing_key="jobs")


def test_a_consumed_message_is_held_by_its_consumer_until_acked(redis_url, namespace):
    import redis
    from kombu.messaging import Consumer, Producer

    from routing.broker import consumer_id

    keys = Keys(namespace)
    plain = redis.Redis.from_url(redis_url, decode_responses=True)
    connection = _connection(redis_url, namespace)
    channel = connection.channel()
    queue = _jobs_queue()
    Producer(channel).publish(
        {"job": 1}, exchange=queue.exchange, routing_key="jobs", declare=[queue]
    )
    seen: list[dict[str, object]] = []

    def on_message(body, message):
        me = consumer_id()
        seen.append(
            {
                "queued": plain.llen(keys.queue_list("jobs")),
                "popped": plain.llen(keys.consumer_popped(me, "jobs")),
                "held": plain.smembers(keys.consumer_held(me)),
                "unacked": plain.hexists(keys.unacked, message.delivery_tag),
                "tag": message.delivery_tag,
            }
        )
        message.ack()

    with Consumer(channel, queues=[queue], callbacks=[on_message]):
        for _ in range(3):  # an empty fetch, then the block, or the fetch finds it at once
            try:
                connection.drain_events(timeout=2)
                break
            except TimeoutError:
                continue
    me = consumer_id()
    assert len(seen) == 1
    delivered = seen[0]
    assert (delivered["queued"], delivered["popped"], delivered["unacked"]) == (0, 0, True)
    assert delivered["held"] == {delivered["tag"]}, "held by this consumer while it runs"
    assert plain.smembers(keys.consumer_held(me)) == set(), "the ack let go of it"
    assert plain.hlen(keys.unacked) == 0
    assert plain.zscore(keys.consumers, me) is not None, "it beat before its first pop"
    connection.release()
    plain.close()


def test_a_dead_consumers_popped_and_held_messages_go_back_to_their_queue(redis_url, namespace):
    import json

    import redis

    from routing.broker import CONSUMER_DEAD_AFTER_S, consumer_id

    keys = Keys(namespace)
    plain = redis.Redis.from_url(redis_url, decode_responses=True)
    connection = _connection(redis_url, namespace)
    channel = cast(Channel, connection.channel())
    queue = _jobs_queue()
    queue(channel).declare()  # the binding kombu's restore_by_tag looks the queue up through
    channel.basic_consume("jobs", no_ack=False, callback=lambda m: None, consumer_tag="t")
    channel.beat()  # a consumer that has been beating (a first beat judges nobody)
    dead = "elsewhere:1:deadbeef"
    long_ago = (time.time() - CONSUMER_DEAD_AFTER_S - 5) * 1000
    plain.zadd(keys.consumers, {dead: long_ago})
    popped = {"body": "popped", "properties": {"delivery_tag": "p1"}}
    held = {"body": "held", "properties": {"delivery_tag": "h1"}}
    plain.lpush(keys.consumer_popped(dead, "jobs"), json.dumps(popped))
    plain.hset(keys.unacked, "h1", json.dumps([held, "jobs", "jobs"]))
    plain.zadd(keys.unacked_index, {"h1": time.time()})
    plain.sadd(keys.consumer_held(dead), "h1")

    channel.beat()

    back = [json.loads(m)["body"] for m in plain.lrange(keys.queue_list("jobs"), 0, -1)]
    assert sorted(back) == ["held", "popped"]
    assert plain.hlen(keys.unacked) == 0
    assert plain.zcard(keys.unacked_index) == 0
    assert not plain.exists(keys.consumer_popped(dead, "jobs"), keys.consumer_held(dead))
    assert plain.zscore(keys.consumers, dead) is None, "forgotten once reclaimed"
    assert plain.zscore(keys.consumers, consumer_id()) is not None, "the living one beat"
    channel.beat()
    assert plain.llen(keys.queue_list("jobs")) == 2, "reclaimed once"
    connection.release()
    plain.close()


def test_a_move_whose_reply_was_cut_off_is_delivered_after_the_reconnect(redis_url, namespace):
    import redis
    from kombu.messaging import Consumer, Producer

    from routing.broker import consumer_id

    keys = Keys(namespace)
    plain = redis.Redis.from_url(redis_url, decode_responses=True)
    connection = _connection(redis_url, namespace)
    channel = cast(Channel, connection.channel())
    queue = _jobs_queue()
    producer = Producer(channel)
    producer.publish({"n": 1}, exchange=queue.exchange, routing_key="jobs", declare=[queue])
    bodies: list[object] = []

    def on_message(body, message):
        bodies.append(body)
        message.ack()

    def drain_until(count: int) -> None:
        for _ in range(6):
            if len(bodies) >= count:
                return
            try:
                connection.drain_events(timeout=1)
            except TimeoutError:
                continue

    with Consumer(channel, queues=[queue], callbacks=[on_message]):
        drain_until(1)
        # Redis moved the next message into this consumer's popped list; its reply was lost
        # with the connection.
        producer.publish({"n": 2}, exchange=queue.exchange, routing_key="jobs")
        plain.lmove(keys.queue_list("jobs"), keys.consumer_popped(consumer_id(), "jobs"))
        channel.client.connection.disconnect()
        drain_until(2)
    assert bodies == [{"n": 1}, {"n": 2}]
    assert plain.llen(keys.consumer_popped(consumer_id(), "jobs")) == 0
    connection.release()
    plain.close()


def test_a_consumer_back_from_an_outage_judges_nobody_until_its_next_beat(redis_url, namespace):
    """After Redis was away longer than the dead-after silence, every consumer's last beat is
    old: the first one back must not take the others (cut off with it) for dead and put back
    every message the fleet has in flight. It beats; the next beat judges."""
    import json

    import redis

    from routing.broker import CONSUMER_DEAD_AFTER_S, consumer_id

    keys = Keys(namespace)
    plain = redis.Redis.from_url(redis_url, decode_responses=True)
    connection = _connection(redis_url, namespace)
    channel = cast(Channel, connection.channel())
    _jobs_queue()(channel).declare()
    channel.basic_consume("jobs", no_ack=False, callback=lambda m: None, consumer_tag="t")
    long_ago = (time.time() - CONSUMER_DEAD_AFTER_S - 5) * 1000
    other = "elsewhere:1:alive"
    plain.zadd(keys.consumers, {consumer_id(): long_ago, other: long_ago})
    message = {"body": "in flight", "properties": {"delivery_tag": "p1"}}
    plain.lpush(keys.consumer_popped(other, "jobs"), json.dumps(message))

    channel.beat()  # the first beat back: both were silent alike
    assert plain.llen(keys.queue_list("jobs")) == 0, "nothing put back on the first beat"
    assert plain.zscore(keys.consumers, other) is not None
    assert (plain.zscore(keys.consumers, consumer_id()) or 0) > long_ago, "it beat"

    plain.zadd(keys.consumers, {other: time.time() * 1000})  # the other one beats meanwhile
    channel.beat()
    assert plain.llen(keys.queue_list("jobs")) == 0, "alive: its message stays with it"
    assert plain.llen(keys.consumer_popped(other, "jobs")) == 1
    connection.release()
    plain.close()
