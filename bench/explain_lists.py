"""The plans of the case-list queries on the large database (issue 11): which index each one uses, and its time.

    python bench/big_db.py          # first, once
    python bench/explain_lists.py [--database caredesk_bench_big] [--full]

Each query is built by the application's own code (caredesk.cases.queries / caredesk.cases.paging) for the seeded
``agent`` (a member of every brand: ``brand_id IN (1, 2, 3)``) and for a one-brand agent, then run under
``EXPLAIN (ANALYZE, BUFFERS)``. Prints the indexes the plan names and the execution time; ``--full`` prints the
plans themselves.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from big_db import BIG_DB


def explain(queryset: Any, full: bool) -> str:
    from django.db import connection

    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        lines = [row[0] for row in cursor.fetchall()]
    plan = "\n".join(lines)
    if full:
        return plan
    indexes = sorted(set(re.findall(r"(?:Index Scan using|Index Only Scan using|Bitmap Index Scan on) (\w+)", plan)))
    seq = sorted(set(re.findall(r"Seq Scan on (\w+)", plan)))
    time = re.search(r"Execution Time: ([\d.]+) ms", plan)
    scans = ", ".join(indexes + [f"SEQ SCAN {t}" for t in seq]) or "-"
    return f"{float(time.group(1)) if time else float('nan'):9.1f} ms   {scans}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=BIG_DB)
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()

    from _db import use_database

    use_database(args.database)
    from django.contrib.auth.models import User

    from caredesk.cases.models import Case
    from caredesk.cases.paging import EXACT_COUNT_LIMIT, _beyond, decode_cursor, encode_cursor
    from caredesk.cases.queries import ORDERINGS, CaseQuery, filter_cases

    agents = {"agent of 3 brands": User.objects.get(username="agent"),
              "agent of 1 brand (5 %)": User.objects.get(username="volt-agent1")}
    active = tuple(Case.OPEN_STATUSES)
    deep = {o: decode_cursor(encode_cursor(Case.objects.order_by(*ORDERINGS[o])[899_999:900_000].get(), o, "older"), o)
            for o in ORDERINGS}
    queries = {
        "active, newest": CaseQuery(statuses=active),
        "active, urgent": CaseQuery(statuses=active, ordering="urgent"),
        "all statuses, newest": CaseQuery(),
        "all statuses, urgent": CaseQuery(ordering="urgent"),
        "active, unassigned": CaseQuery(statuses=active, assignee="none"),
        "active, priority 4": CaseQuery(statuses=active, priority=4),
        "needs_reply": CaseQuery(needs_reply=True),
        "q=refund": CaseQuery(text="refund"),
        "q=modem": CaseQuery(text="modem"),
        "q=xylophone (no case has it)": CaseQuery(text="xylophone"),
    }
    for who, user in agents.items():
        print(f"--- {who}")
        for name, query in queries.items():
            cases = filter_cases(user, query)
            print(f"{name + ', page':<38} {explain(cases[:101], args.full)}")
            if name.startswith("all statuses"):
                cursor = deep[query.ordering]
                print(f"{name + ', 900,000 down':<38} {explain(_beyond(cases, cursor)[:101], args.full)}")
            if name.startswith("active, newest") or name.startswith("q="):
                capped = cases.order_by().values("pk")[: EXACT_COUNT_LIMIT + 1]
                print(f"{name + ', capped count':<38} {explain(capped, args.full)}")


if __name__ == "__main__":
    main()
