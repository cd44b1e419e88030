"""Removing finished jobs from procrastinate's tables.

The connector poll alone is a job every two seconds, some 43,000 a day, each with a few event rows. What a job did
is recorded in caredesk's own tables (posts, cursors, reply status), so the hourly job below removes succeeded jobs
an hour after they finished. Failed, cancelled and aborted jobs are kept for a week for whoever investigates them.
(procrastinate's worker option ``delete_jobs="successful"`` would delete them at once; while it was on, the browser
tests' teardown deadlocked now and then against their live worker, so it is not used; an hour of rows costs little.)
"""

from __future__ import annotations

from typing import Any

from procrastinate.contrib.django import app

KEEP_UNSUCCESSFUL_HOURS = 7 * 24
KEEP_SUCCEEDED_HOURS = 1


async def remove_finished_jobs(job_manager: Any) -> None:
    await job_manager.delete_old_jobs(nb_hours=KEEP_SUCCEEDED_HOURS)
    await job_manager.delete_old_jobs(
        nb_hours=KEEP_UNSUCCESSFUL_HOURS, include_failed=True, include_cancelled=True, include_aborted=True
    )


@app.periodic(cron="23 * * * *", periodic_id="remove-finished-jobs")
@app.task(name="jobs.remove_finished", queue="housekeeping", queueing_lock="jobs.remove_finished", pass_context=True)
async def remove_finished(context: Any, timestamp: int) -> None:
    await remove_finished_jobs(context.app.job_manager)
