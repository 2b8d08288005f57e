"""Summarises the Arrow batches per machine; writes the rows to the file RESULT names, if set."""

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from doradus import Input, Node

tables = []
for event in Node():
    if isinstance(event, Input):
        batch = pa.RecordBatch.from_struct_array(event.value)  # a RecordBatch arrives as a StructArray
        tables.append(pa.Table.from_batches([batch]))
table = pa.concat_tables(tables) if tables else pa.table({})
for machine in sorted(set(table.column("machine").to_pylist())) if tables else []:
    rows = table.filter(pc.equal(table.column("machine"), machine))
    print(
        f"{machine}: {rows.num_rows} bursts, mean rms {pc.mean(rows.column('rms')).as_py():.3f} "
        f"{rows.column('unit')[0].as_py()}, max peak {pc.max(rows.column('peak')).as_py():.2f}"
    )
if "RESULT" in os.environ:
    Path(os.environ["RESULT"]).write_text(json.dumps(table.to_pylist()))
