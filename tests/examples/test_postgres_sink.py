"""examples/postgres-sink: every reading lands in the machine's PostgreSQL, once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
from tests.conftest import Ran
from tests.examples.conftest import full_size


def test_rows_are_written_once_each(run_example: Callable[..., Ran], postgres_dsn: str) -> None:
    rows = 1_000_000 if full_size() else 20_000
    env = {"DATABASE_URL": postgres_dsn, "ROWS": str(rows), "PG_TABLE": "meter_readings"}
    ran = run_example(
        "postgres-sink", *(a for k, v in env.items() for a in ("--env", f"{k}={v}")), timeout=600
    )
    assert ran.returncode == 0, ran.output
    (summary,) = ran.lines_of("pg-sink")
    assert summary.startswith(f"wrote {rows} rows into meter_readings"), summary

    with psycopg.connect(postgres_dsn) as db:
        run_ids = db.execute("SELECT DISTINCT run_id FROM meter_readings").fetchall()
        count, seqs, low, high, kwh = (
            db.execute(
                "SELECT count(*), count(DISTINCT seq), min(seq), max(seq), sum(kwh) FROM meter_readings"
            ).fetchone()
            or (None,) * 5
        )
        meters = db.execute(
            "SELECT meter, count(*) FROM meter_readings GROUP BY meter ORDER BY meter"
        ).fetchall()
        row = db.execute(
            "SELECT meter, kwh, taken_at FROM meter_readings WHERE seq = %s", (rows - 1,)
        ).fetchone()
    assert len(run_ids) == 1  # the run id of this run, on every row
    assert run_ids[0][0] in summary
    assert (count, seqs, low, high) == (rows, rows, 0, rows - 1)
    assert kwh == sum(0.25 + (seq % 7) * 0.125 for seq in range(rows))  # exact: eighths add exactly
    assert meters == [(f"meter-{m:02d}", rows // 50) for m in range(50)]
    last = rows - 1
    assert row == (
        f"meter-{last % 50:02d}",
        0.25 + (last % 7) * 0.125,
        datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=last),
    )
    print(f"\npostgres-sink: {summary}")
