"""Run each contender of a benchmark in a fresh process and collect its time and peak memory."""

from __future__ import annotations

import itertools
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


_SPEC_RUNS = itertools.count()


def run_spec(
    script: str,
    python: str,
    which: str,
    spec: dict[str, Any],
    tmp: Path,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run ``script --child which --spec JSON --result FILE`` with ``python`` (a peer's
    interpreter, or this one) in a fresh process; the result comes back in a file (see
    :func:`run_spec_child`), with ``process_seconds`` added. A child that runs over
    ``timeout`` seconds is killed: ``{"did_not_finish_s": timeout}``."""
    result = tmp / f"{which}-{next(_SPEC_RUNS)}.json"
    cmd = [python, script, "--child", which, "--spec", json.dumps(spec), "--result", str(result)]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"did_not_finish_s": timeout}
    wall = time.perf_counter() - t0
    if res.returncode != 0 or not result.exists():
        return {"error": f"exit {res.returncode}: {res.stderr[-3000:]}"}
    out: dict[str, Any] = json.loads(result.read_text())
    out["process_seconds"] = round(wall, 2)
    return out


def run_spec_child(
    children: dict[str, Callable[[dict[str, Any]], dict[str, Any]]],
    which: str,
    spec_json: str,
    result_file: str,
) -> None:
    """The child side of a peer run: ``children[which](spec)`` written as JSON to
    ``result_file``; an exception becomes ``{"error": ...}`` (a peer that fails is reported,
    not fatal)."""
    spec = json.loads(spec_json)
    try:
        out = children[which](spec)
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    Path(result_file).write_text(json.dumps(out))


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
