"""Which producer errors park an outbox row (refused for good) and which are retried."""

from __future__ import annotations

import pytest
from aiokafka import errors

from services.common.relay import refused_for_good


@pytest.mark.parametrize(
    "error",
    [
        errors.MessageSizeTooLargeError(),
        errors.RecordListTooLargeError(),
        errors.RecordTooLargeError(),
        errors.InvalidTopicError(),
        errors.TopicAuthorizationFailedError("decisions"),
        errors.InvalidTimestampError(),
        errors.PolicyViolationError(),
    ],
)
def test_a_record_the_broker_can_never_take_parks_its_row(error: Exception) -> None:
    assert refused_for_good(error)


@pytest.mark.parametrize(
    "error",
    [
        errors.KafkaConnectionError(),
        errors.NotLeaderForPartitionError(),
        errors.LeaderNotAvailableError(),
        errors.RequestTimedOutError(),
        errors.KafkaTimeoutError(),
        errors.NotEnoughReplicasError(),
        errors.UnknownTopicOrPartitionError(),  # a topic not created yet: create it, and it goes
        errors.ClusterAuthorizationFailedError(),  # not about one record: parking would take them all
        errors.UnknownError(),
        OSError("connection reset"),
    ],
)
def test_an_error_that_may_pass_is_retried_not_parked(error: Exception) -> None:
    assert not refused_for_good(error)
