"""Run each contender of a benchmark in a fresh process and collect its time and peak memory."""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def measure(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn`` in this process; add wall seconds and peak RSS (MB) to its result."""
    t0 = time.perf_counter()
    out = fn()
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def run_child(script: str, *args: str) -> dict[str, Any]:
    """Run ``script --child ...`` in a new interpreter; it prints one JSON line last."""
    res = subprocess.run(
        [sys.executable, script, "--child", *args], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def machine() -> dict[str, Any]:
    import os

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "system": platform.system(),
    }


def peer_python(
    venv: Path, requirements: list[str], packages: list[str], *, note: str = ""
) -> tuple[str, dict[str, str]]:
    """A peer's own virtualenv: its interpreter and the versions of ``packages`` in it.

    The venv is created and ``requirements`` pip-installed into it when a package is missing
    or a pinned version (``name==x.y``) differs; the peer is never a dependency of Mercato.
    """
    py = venv / "bin" / "python"
    probe = (
        "import importlib.metadata as m, json; "
        f"print(json.dumps({{p: m.version(p) for p in {packages!r}}}))"
    )
    pins = dict(r.split("==", 1) for r in requirements if "==" in r)

    def versions() -> dict[str, str] | None:
        if not py.exists():
            return None
        r = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    found = versions()
    if found is None or any(found.get(p) != v for p, v in pins.items()):
        print(f"installing {' '.join(requirements)} into {venv}{note}...", file=sys.stderr)
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "--quiet", *requirements],
            check=True,
            stdout=sys.stderr,
        )
        found = versions()
        if found is None:
            raise SystemExit(f"{', '.join(packages)} did not install into {venv}")
    return str(py), found
