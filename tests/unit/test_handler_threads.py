"""Each service's batch handler runs on the event loop: no worker-thread hop per batch.

FastDepends runs any synchronous piece of a handler's call (a plain-function decoder, the
context field behind a ``message: KafkaMessage`` parameter) in a worker thread. The handlers
use a coroutine decoder and :func:`message_in_hand` instead; this counts the hops under
FastStream's test broker (no server: what is counted happens before the handler's body).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import anyio.to_thread
import pytest
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker

import services.common.consumer as consumer
import services.notifier.entrypoints.delivery as delivery_kafka
import services.notifier.entrypoints.kafka as notifier_kafka
import services.recovery.entrypoints.kafka as recovery_kafka
from services.notifier.settings import NotifierSettings
from services.recovery.settings import RecoverySettings


@contextlib.contextmanager
def _counting_hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    hops: list[Any] = []
    real = anyio.to_thread.run_sync

    async def run_sync(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", run_sync)
    yield hops


async def test_the_counter_sees_the_hop_of_a_message_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = KafkaBroker()

    @broker.subscriber("t", batch=True)
    async def handler(body: Any, message: KafkaMessage) -> None:
        assert message is not None

    with _counting_hops(monkeypatch) as hops:
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish_batch(b"x", topic="t")
    assert len(hops) == 1


async def test_message_in_hand_gives_the_batch_without_a_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = KafkaBroker()
    seen: list[Any] = []

    @broker.subscriber("t", batch=True, decoder=consumer._raw)
    async def handler(body: Any) -> None:
        seen.append(consumer.message_in_hand(broker).raw_message)

    with _counting_hops(monkeypatch) as hops:
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish_batch(b"a", b"b", topic="t")
    assert [[r.value for r in raw] for raw in seen] == [[b"a", b"b"]]
    assert hops == []


def test_message_in_hand_outside_a_handler_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no Kafka message in hand"):
        consumer.message_in_hand(KafkaBroker())


@pytest.mark.parametrize(
    ("module", "settings", "topic"),
    [
        (recovery_kafka, RecoverySettings, "customer.complaints"),
        (notifier_kafka, NotifierSettings, "recovery.decisions"),
        (delivery_kafka, NotifierSettings, "notifications.email"),
    ],
)
async def test_no_service_handler_hops_to_a_thread(
    module: ModuleType, settings: type[Any], topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached: list[Any] = []
    real = consumer.message_in_hand

    def in_hand(broker: KafkaBroker) -> Any:
        message = real(broker)
        reached.append(message)
        # Stop here: the rest of the handler needs the running service (a server, a pool).
        raise _Reached

    monkeypatch.setattr(module, "message_in_hand", in_hand)
    app = module.build_app(settings())
    with _counting_hops(monkeypatch) as hops:
        async with TestKafkaBroker(app.broker) as test_broker:
            with pytest.raises(_Reached):
                await test_broker.publish_batch(b"{}", topic=topic)
    assert len(reached) == 1
    assert hops == []


class _Reached(Exception):
    pass
