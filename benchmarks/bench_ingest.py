"""Benchmark: ingesting a large events CSV (default 10,000,000 rows).

Mercato (`ingest_file`: streamed, validated, staged, deduplicated, committed into DuckDB) against
the usual pandas route (`pandas.read_csv` of the whole file, then insert into DuckDB, no
validation). Each runs in a fresh process; prints their wall time, peak memory and the ratios.

    .venv/bin/python benchmarks/bench_ingest.py [--rows N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import machine, measure, run_child  # noqa: E402

TYPES = ["view", "add_to_cart", "purchase", "search", "email_open"]


def make_csv(path: Path, rows: int) -> None:
    """A realistic events file, written in chunks with pyarrow (never all in memory)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(0)
    chunk = 1_000_000
    start = np.datetime64("2025-01-01T00:00:00", "s")
    with pacsv.CSVWriter(
        str(path),
        pa.schema(
            [
                ("event_id", pa.string()),
                ("customer_id", pa.string()),
                ("ts", pa.timestamp("s")),
                ("event_type", pa.string()),
                ("product_id", pa.string()),
                ("value", pa.float64()),
            ]
        ),
    ) as w:
        for lo in range(0, rows, chunk):
            n = min(chunk, rows - lo)
            ids = np.arange(lo, lo + n)
            cust = rng.integers(0, rows // 10 + 1, n)
            t = pa.table(
                {
                    "event_id": pa.array(ids).cast(pa.string()),
                    "customer_id": pa.array(cust).cast(pa.string()),
                    "ts": pa.array(
                        start + rng.integers(0, 365 * 86400, n).astype("timedelta64[s]")
                    ),
                    "event_type": pa.array(np.array(TYPES)[rng.integers(0, len(TYPES), n)]),
                    "product_id": pa.array(rng.integers(0, 20000, n)).cast(pa.string()),
                    "value": pa.array(np.round(rng.gamma(2, 10, n), 2)),
                }
            )
            w.write_table(t)


def child(which: str, csv: str, db: str) -> None:
    if which == "mercato":
        from mercato.data.ingest import ingest_file
        from mercato.data.warehouse import Warehouse

        def go():
            wh = Warehouse(f"duckdb://{db}")
            rep = ingest_file(wh, "events", csv)
            n = wh.count("events")
            wh.close()
            return {"inserted": rep.inserted, "rows_in_table": n}
    else:
        import duckdb
        import pandas as pd

        def go():
            df = pd.read_csv(
                csv,
                dtype={"event_id": str, "customer_id": str, "product_id": str},
                parse_dates=["ts"],
            )
            con = duckdb.connect(db)
            con.register("df_view", df)
            con.execute("CREATE TABLE events AS SELECT * FROM df_view")
            n = con.execute("SELECT count(*) FROM events").fetchone()[0]
            con.close()
            return {"inserted": int(n), "rows_in_table": int(n)}

    print(json.dumps(measure(go)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--child")
    ap.add_argument("--csv")
    ap.add_argument("--db")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.csv, a.db)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        csv = tmp / "events.csv"
        make_csv(csv, a.rows)
        res = {}
        for who in ("mercato", "pandas"):
            res[who] = run_child(__file__, who, "--csv", str(csv), "--db", str(tmp / f"{who}.db"))
        size_mb = round(csv.stat().st_size / 2**20, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    m, p = res["mercato"], res["pandas"]
    print(
        json.dumps(
            {
                "benchmark": "ingest-csv",
                "rows": a.rows,
                "csv_mb": size_mb,
                "machine": machine(),
                "mercato": m,
                "pandas": p,
                "time_ratio_pandas_over_mercato": round(p["seconds"] / m["seconds"], 2),
                "memory_ratio_mercato_over_pandas": round(m["peak_rss_mb"] / p["peak_rss_mb"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
