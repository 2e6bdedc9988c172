"""Benchmark: `mercato datasets load online-retail` (541,909 lines) into a fresh DuckDB warehouse.

Reports wall time, peak memory and the lines accepted and rejected by reason. The peer is the
plain pandas route (read the CSV, split into orders / lines / customers / products, write to
DuckDB) without validation or counting, measured in the same run.

    MERCATO_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_online_retail.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import machine, measure, run_child  # noqa: E402


def child(which: str, db: str, data_dir: str) -> None:
    if which == "mercato":
        from mercato.data.datasets import load_dataset
        from mercato.data.warehouse import Warehouse

        def go():
            wh = Warehouse(f"duckdb://{db}")
            rep = load_dataset(wh, "online-retail", data_dir=data_dir).to_dict()
            wh.close()
            return {"tables": rep["tables"], "counts": rep["counts"]}
    else:
        import duckdb
        import pandas as pd

        def go():
            df = pd.read_csv(
                Path(data_dir) / "online_retail.csv.gz",
                encoding="latin-1",
                dtype={"InvoiceNo": str, "StockCode": str},
            )
            df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"], format="mixed")
            orders = df.groupby("InvoiceNo", as_index=False).agg(
                customer_id=("CustomerID", "first"),
                ts=("InvoiceDate", "min"),
                country=("Country", "first"),
            )
            lines = df[["InvoiceNo", "StockCode", "Quantity", "UnitPrice"]].copy()
            lines["line_no"] = lines.groupby("InvoiceNo").cumcount() + 1
            customers = (
                df.dropna(subset=["CustomerID"])
                .groupby("CustomerID", as_index=False)
                .agg(country=("Country", "first"), created_at=("InvoiceDate", "min"))
            )
            products = df.groupby("StockCode", as_index=False).agg(
                name=("Description", "first"), price=("UnitPrice", "median")
            )
            con = duckdb.connect(db)
            for name, frame in [
                ("orders", orders),
                ("order_lines", lines),
                ("customers", customers),
                ("products", products),
            ]:
                con.register("f", frame)
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM f")
                con.unregister("f")
            con.close()
            return {"lines": len(lines), "customers": len(customers)}

    print(json.dumps(measure(go)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--db")
    ap.add_argument("--data-dir", default=os.environ.get("MERCATO_DATA_DIR"))
    a = ap.parse_args()
    if not a.data_dir:
        raise SystemExit("set MERCATO_DATA_DIR (or --data-dir) to the public data sets folder")
    if a.child:
        child(a.child, a.db, a.data_dir)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-retail-"))
    try:
        res = {
            w: run_child(__file__, w, "--db", str(tmp / f"{w}.db"), "--data-dir", a.data_dir)
            for w in ("mercato", "pandas")
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    m, p = res["mercato"], res["pandas"]
    print(
        json.dumps(
            {
                "benchmark": "datasets-load-online-retail",
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
