"""Writes every reading into PG_TABLE (created when missing), one transaction per message.

Rows go through COPY into a temporary staging table, then `INSERT ... ON CONFLICT DO NOTHING`:
a reading delivered twice (a replayed message) is stored once. Each row keeps the run id.
"""

import os
import time

import psycopg
import pyarrow as pa
from psycopg import sql

from doradus import Input, Node

DSN = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLE_NAME = os.environ.get("PG_TABLE", "meter_readings")
TABLE = sql.Identifier(TABLE_NAME)  # quoted by psycopg, never pasted into SQL
RUN_ID = os.environ.get("DORADUS_RUN_ID", "")

try:
    db = psycopg.connect(DSN, connect_timeout=10)
except psycopg.OperationalError as exc:
    raise SystemExit(
        f"pg-sink: cannot connect to {DSN}: {exc}; start PostgreSQL or set DATABASE_URL"
    ) from exc
with db.transaction():
    db.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " run_id text NOT NULL, meter text NOT NULL, seq bigint NOT NULL,"
            " kwh double precision NOT NULL, taken_at timestamptz NOT NULL,"
            " PRIMARY KEY (run_id, meter, seq))"
        ).format(TABLE)
    )
    db.execute(sql.SQL("CREATE TEMPORARY TABLE staging (LIKE {}) ON COMMIT DELETE ROWS").format(TABLE))

node = Node()
written = 0
began = None
for event in node:
    if isinstance(event, Input) and event.id == "readings":
        began = began or time.perf_counter()
        batch = pa.RecordBatch.from_struct_array(event.value)
        columns = [batch.column(name).to_pylist() for name in ("meter", "seq", "kwh", "taken_at")]
        with db.transaction(), db.cursor() as cursor:
            with cursor.copy("COPY staging (run_id, meter, seq, kwh, taken_at) FROM STDIN") as copy:
                for row in zip(*columns, strict=True):
                    copy.write_row((RUN_ID, *row))
            cursor.execute(
                sql.SQL("INSERT INTO {} SELECT * FROM staging ON CONFLICT DO NOTHING").format(TABLE)
            )
            written += cursor.rowcount
db.close()
seconds = time.perf_counter() - began if began else 0.0
rate = f", {written / seconds:,.0f} rows/s" if seconds else ""
print(f"wrote {written} rows into {TABLE_NAME} (run {RUN_ID}) in {seconds:.2f} s{rate}")
