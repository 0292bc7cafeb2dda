"""While the usage writer's thread holds its transaction open, other threads still read.

The embedded default writes usage from a thread of its own; the gateway's request
threads, the admin and the API read the same tables meanwhile. A reader must see the
last committed state at once — never "database table is locked".
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from django.db import connection, transaction

from agent_registry.access.models import AgentAccess
from agent_registry.usage.models import UsageRecord
from agent_registry.usage.writer import write_batch
from tests import factories

WAIT_SECONDS = 30.0  # only ever reached if the writer thread is stuck


def test_a_reader_sees_the_committed_state_while_a_batch_is_being_written(transactional_db):
    access = factories.make_subscription().access
    in_transaction, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            # given the writer's batch written but its transaction not yet committed
            with transaction.atomic():
                write_batch([factories.usage_row_for(access, at=datetime.now(UTC))])
                in_transaction.set()
                release.wait(WAIT_SECONDS)
        except BaseException as exc:
            failures.append(exc)
        finally:
            in_transaction.set()
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert in_transaction.wait(WAIT_SECONDS)
        # when another thread reads the tables the batch writes
        records = UsageRecord.objects.filter(access=access).count()
        total_requests = AgentAccess.objects.get(pk=access.pk).total_requests
    finally:
        release.set()
        thread.join(WAIT_SECONDS)

    # then it sees what was committed before, and the batch commits afterwards
    assert (records, total_requests) == (0, 0)
    assert failures == []
    assert not thread.is_alive()
    assert UsageRecord.objects.filter(access=access).count() == 1
