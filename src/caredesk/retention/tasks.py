"""The worker's share of data ageing: partitions made ahead (daily), and every brand's retention policy (daily).

Both are periodic procrastinate jobs with a queueing lock, so one runs at a time however many workers there are;
each is safe to run again at any moment (partitions: idempotent; retention: resumes its run in progress).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.db import close_old_connections, connection, transaction
from procrastinate.contrib.django import app

from caredesk.retention import partitions
from caredesk.retention.actions import run_all

log = logging.getLogger(__name__)


def maintain_partitions(now: datetime) -> list[str]:
    """This month's and the next months' partitions of every partitioned table; returns those made."""
    with transaction.atomic(), connection.cursor() as cursor:
        made = partitions.ensure_ahead(cursor, now)
    if made:
        log.info("partitions made: %s", ", ".join(made))
    return made


@app.periodic(cron="41 1 * * *", periodic_id="partitions-ahead")
@app.task(name="retention.partitions", queue="housekeeping", queueing_lock="retention.partitions",
          pass_context=False)
def partitions_job(timestamp: int) -> None:
    close_old_connections()
    maintain_partitions(datetime.fromtimestamp(timestamp, UTC))


@app.periodic(cron="13 3 * * *", periodic_id="retention-daily")
@app.task(name="retention.apply", queue="housekeeping", queueing_lock="retention.apply", pass_context=False)
def retention_job(timestamp: int) -> None:
    close_old_connections()
    run_all(datetime.now(UTC))
