"""Issue 11, data that ages well: does a year of data slow today's work, and how fast does retention remove it?

Builds its own database (``caredesk_bench_retention``, never the shared large one) with bench/big_db.py at
``--scale`` of its year of data, then measures:

1. **Activities, one table vs partitioned.** The same rows copied into monthly partitions with the same indexes; on
   both, today's case timeline (a recent case's activities by id, as the case page reads them), on a warm
   connection and as the first query of a new one, and the live stream's page (the hub's own SQL, from a position
   near the end). Median and p95 over random recent cases. (Activities stay one table: this is why.)
2. **Posts, a year in one table vs a month.** The last 30 days of posts copied into a table of their own with the
   same indexes; on both, ingest's dedupe lookup (installation, external id) and a recent case's posts.
3. **Retention.** A year of raw payloads (``--payloads``) inserted for every brand; policies of 90 days set (the
   large brand *redact*, the others *delete*); the payload months past every policy dropped whole, then each
   brand's run for ``--batches`` batches: cases and posts per second.
4. **A raw payload by id** (processing, retry) as a new connection's first query: partitioned vs one table.

    python bench/retention_scale.py --scale 0.1
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

DB = "caredesk_bench_retention"


def _timed(cursor: Any, sql: str, params: list[Any], repeat: int = 1) -> float:
    began = time.perf_counter()
    for _ in range(repeat):
        cursor.execute(sql, params)
        cursor.fetchall()
    return (time.perf_counter() - began) / repeat * 1000


def _stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered):6.3f} ms  p95 {p95:6.3f} ms"


def _copy_table(cursor: Any, source: str, target: str, where: str, indexes: list[str],
                params: list[Any] | None = None) -> None:
    cursor.execute(f"DROP TABLE IF EXISTS {target}")
    cursor.execute(f"CREATE TABLE {target} AS SELECT * FROM {source} {where}", params or [])  # noqa: S608
    cursor.execute(f"ALTER TABLE {target} ADD PRIMARY KEY (id)")
    for i, columns in enumerate(indexes):
        cursor.execute(f"CREATE INDEX {target}_{i} ON {target} ({columns})")
    cursor.execute(f"ANALYZE {target}")


def _partitioned_copy(cursor: Any, end: Any) -> int:
    """cases_activity copied into bench_activity_part, partitioned by month of created_at as raw payloads are, with
    the same indexes. Returns the number of monthly partitions holding rows."""
    from caredesk.retention import partitions

    cursor.execute("DROP TABLE IF EXISTS bench_activity_part")
    cursor.execute("CREATE TABLE bench_activity_part (LIKE cases_activity INCLUDING DEFAULTS) "
                   "PARTITION BY RANGE (created_at)")
    cursor.execute("CREATE TABLE bench_activity_part_default PARTITION OF bench_activity_part DEFAULT")
    month = partitions.month_start(end - timedelta(days=400))
    while month <= partitions.add_months(partitions.month_start(end), partitions.MONTHS_AHEAD):
        part = partitions.partition_for("bench_activity_part", month)
        cursor.execute(f"CREATE TABLE {part.name} PARTITION OF bench_activity_part FOR VALUES FROM (%s) TO (%s)",
                       [part.start, part.end])
        month = part.end
    cursor.execute("INSERT INTO bench_activity_part SELECT * FROM cases_activity")
    cursor.execute("ALTER TABLE bench_activity_part ADD PRIMARY KEY (id, created_at)")
    for columns in ("case_id, id", "txid, id", "brand_id", "case_id", "actor_id"):
        cursor.execute(f"CREATE INDEX ON bench_activity_part ({columns})")
    cursor.execute("ANALYZE bench_activity_part")
    cursor.execute("SELECT count(DISTINCT tableoid) FROM bench_activity_part")
    return int(cursor.fetchone()[0])


def _new_connection_ms(sql: str, params: list[Any]) -> float:
    """The query as the first one on a fresh connection after a trivial one, as each request (CONN_MAX_AGE 0)
    runs it: the backend has not yet read the tables' catalog entries."""
    import psycopg

    from caredesk.inbox.stream import database_conninfo

    with psycopg.connect(database_conninfo()) as conn:
        conn.execute("SELECT 1")
        began = time.perf_counter()
        conn.execute(sql, params).fetchall()
        return (time.perf_counter() - began) * 1000


def activities(cursor: Any, end: Any, rng: random.Random, samples: int) -> None:
    from caredesk.inbox.stream import _PAGE_SQL

    parts = _partitioned_copy(cursor, end)
    cursor.execute("SELECT count(*) FROM cases_activity")
    print(f"activities: {cursor.fetchone()[0]:,} rows; one table (cases_activity, as migrated) vs the same rows "
          f"in monthly partitions (bench_activity_part: {parts} months holding rows, 3 ahead, a default)")
    cursor.execute("SELECT id, created_at FROM cases_case WHERE created_at >= %s", [end - timedelta(days=7)])
    sampled = rng.sample(cursor.fetchall(), min(samples, 300))
    timeline = "SELECT id, kind, actor_id, data, created_at FROM {t} WHERE case_id = %s ORDER BY id"
    # Bounded below by the case's creation (a day of margin for platform clocks), the bound computed here, so the
    # planner prunes the months before it.
    bounded = timeline.replace(" ORDER BY", " AND created_at >= %s ORDER BY")
    variants = [("timeline, one table", timeline.format(t="cases_activity"), False),
                ("timeline, partitioned", timeline.format(t="bench_activity_part"), False),
                ("timeline, partitioned, bounded", bounded.format(t="bench_activity_part"), True)]
    for label, sql, with_bound in variants:
        args = [[c, at - timedelta(days=1)] if with_bound else [c] for c, at in sampled]
        for a in args[:20]:  # warm the cache: every variant reads from memory
            _timed(cursor, sql, a)
        print(f"  {label:<32} same connection {_stats([_timed(cursor, sql, a) for a in args])}")
        fresh = [_new_connection_ms(sql, a) for a in args[: max(20, samples // 5)]]
        print(f"  {label:<32} new connection  {_stats(fresh)}")
    cursor.execute("SELECT txid::text, id FROM cases_activity ORDER BY txid DESC, id DESC OFFSET 500 LIMIT 1")
    position = list(cursor.fetchone())
    for table in ("cases_activity", "bench_activity_part"):
        page = _PAGE_SQL.format(table=table, brand_filter="")
        times = [_timed(cursor, page, [*position, 500]) for _ in range(max(20, samples // 5))]
        print(f"  stream page of 500 near now, {table:<20} {_stats(times)}")
    cursor.execute("DROP TABLE bench_activity_part")


def posts(cursor: Any, end: Any, rng: random.Random, samples: int) -> None:
    _copy_table(cursor, "cases_post", "bench_post_month", "WHERE created_at >= %s",
                ["installation_id, external_id", "case_id, created_at"], [end - timedelta(days=30)])
    cursor.execute("SELECT count(*) FROM cases_post")
    year = cursor.fetchone()[0]
    cursor.execute("SELECT count(*) FROM bench_post_month")
    month = cursor.fetchone()[0]
    print(f"posts: a year {year:,} rows in one table vs the last month alone {month:,} rows")
    cursor.execute("SELECT installation_id, external_id, case_id FROM bench_post_month")
    recent = cursor.fetchall()
    picked = rng.sample(recent, min(samples, len(recent)))
    dedupe = "SELECT id FROM {t} WHERE installation_id = %s AND external_id = %s"
    by_case = "SELECT id, text, created_at FROM {t} WHERE case_id = %s ORDER BY created_at"
    for table in ("cases_post", "bench_post_month"):
        for inst, ext, case in picked[:20]:
            _timed(cursor, dedupe.format(t=table), [inst, ext])
            _timed(cursor, by_case.format(t=table), [case])
        times = [_timed(cursor, dedupe.format(t=table), [inst, ext]) for inst, ext, _ in picked]
        print(f"  dedupe lookup, {table:<18} {_stats(times)}")
        times = [_timed(cursor, by_case.format(t=table), [case]) for _, _, case in picked]
        print(f"  a recent case's posts, {table:<10} {_stats(times)}")
    cursor.execute("DROP TABLE bench_post_month")


def retention(connection: Any, end: Any, payloads: int, batches: int) -> None:
    from django.db import transaction

    from caredesk.accounts.models import Brand
    from caredesk.connectors.models import ConnectorInstallation
    from caredesk.retention import partitions
    from caredesk.retention.actions import do_set_retention, drop_expired_payload_partitions, run_retention

    with transaction.atomic(), connection.cursor() as cursor:
        partitions.ensure_partitions(cursor, "connectors_rawpayload", end - timedelta(days=400), end)
        installations = list(ConnectorInstallation.objects.values_list("id", flat=True))
        cursor.execute(
            "INSERT INTO connectors_rawpayload (installation_id, source, received_at, body, status, error, attempts) "
            "SELECT (%s::bigint[])[1 + g %% %s], 'webhook', %s - (g * interval '365 days' / %s), "
            "convert_to(repeat('x', 600), 'UTF8'), CASE WHEN g %% 100 = 0 THEN 'failed' ELSE 'processed' END, '', 1 "
            "FROM generate_series(1, %s) AS g",
            [installations, len(installations), end, payloads, payloads],
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE connectors_rawpayload")
    brands = list(Brand.objects.order_by("pk"))
    for i, brand in enumerate(brands):
        do_set_retention(brand, 90, "redact" if i == 0 else "delete", end - timedelta(days=1))
    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        dropped = drop_expired_payload_partitions(cursor, end)
        cursor.execute("SELECT count(*) FROM connectors_rawpayload")
        left = cursor.fetchone()[0]
    seconds = time.perf_counter() - began
    print(f"retention: {payloads:,} raw payloads over a year; {len(dropped)} months past every 90-day policy "
          f"dropped whole in {seconds * 1000:.0f} ms; {left:,} payloads left")
    for brand in brands:
        began = time.perf_counter()
        outcome = run_retention(brand, end, batch_size=500, max_batches=batches)
        seconds = time.perf_counter() - began
        assert outcome is not None
        counts = outcome.run.counts
        cases = counts.get("cases_redacted", 0) + counts.get("cases_deleted", 0)
        posts = counts.get("posts_redacted", 0) + counts.get("posts_deleted", 0)
        state = "finished" if outcome.finished else f"stopped after {batches} batches"
        print(f"  {brand.slug} ({outcome.run.action}): {cases:,} cases, {posts:,} posts, "
              f"{counts.get('payloads_deleted', 0):,} payloads in {seconds:.1f} s ({state}): "
              f"{cases / seconds:,.0f} cases/s, {posts / seconds:,.0f} posts/s")


def payloads_by_id(cursor: Any, rng: random.Random, samples: int) -> None:
    """A payload by id (processing, retry) as the first query of a new connection: partitioned vs one table."""
    _copy_table(cursor, "connectors_rawpayload", "bench_payload_plain", "",
                ["installation_id, status, id", "installation_id"])
    cursor.execute("SELECT id FROM connectors_rawpayload")
    ids = [r[0] for r in cursor.fetchall()]
    cursor.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'connectors_rawpayload'::regclass")
    print(f"raw payloads: {len(ids):,} left in {cursor.fetchone()[0]} partitions")
    sql = "SELECT id, installation_id, source, body, status FROM {t} WHERE id = %s"
    for table in ("connectors_rawpayload", "bench_payload_plain"):
        times = [_new_connection_ms(sql.format(t=table), [rng.choice(ids)]) for _ in range(max(20, samples // 4))]
        print(f"  a payload by id, new connection, {table:<22} {_stats(times)}")
    cursor.execute("DROP TABLE bench_payload_plain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1, help="of big_db's year (1.0: 1M cases)")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--payloads", type=int, default=200_000)
    parser.add_argument("--batches", type=int, default=20, help="retention batches (of 500 cases) per brand")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    import big_db
    from _db import setup_database

    began = time.monotonic()
    setup_database(DB)
    from django.db import connection, transaction

    with transaction.atomic():
        seeded = big_db.seed_accounts()
    sizes = big_db.Sizes().scaled(args.scale)
    big_db.load(connection, sizes, seeded, args.seed, log=lambda _: None)
    print(f"built {DB}: {sizes.cases:,} cases, {sizes.posts:,} posts, {sizes.activities:,} activities "
          f"in {time.monotonic() - began:.0f} s")
    rng = random.Random(args.seed)
    with connection.cursor() as cursor:
        activities(cursor, big_db.END, rng, args.samples)
        posts(cursor, big_db.END, rng, args.samples)
    retention(connection, big_db.END, args.payloads, args.batches)
    with connection.cursor() as cursor:
        payloads_by_id(cursor, rng, args.samples)


if __name__ == "__main__":
    main()
