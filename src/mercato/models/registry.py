"""The model registry: every trained model, versioned in the workspace, loadable without pickle.

Layout (``<workspace>/models/``)::

    <name>/
      v1/
        manifest.json   what the model is: kind, format, created, parameters, metrics,
                        data window, customers (count and fingerprint), files with sha256
        model.json      the model itself, as its ``to_dict()`` wrote it (plain JSON)
        customers.npy   the customers it was trained on, as sorted 64-bit keyed hashes
      v2/ ...

Loading reads JSON (and LightGBM's text format inside it, for models that hold boosters): it
never unpickles, so a web worker can load a model without the training code's objects, and a
tampered file is refused (its sha256 must match the manifest's).

``customers.npy`` lets the privacy controls answer "which models were trained on this
customer?" without keeping the identifiers themselves: each id is hashed with BLAKE2b keyed by
a per-model random salt (kept in the manifest), so the file does not reveal the ids and the same
id hashes differently in two models. :meth:`ModelRegistry.trained_on` checks membership.

A version directory is written under a temporary name and renamed into place: a reader sees a
version completely or not at all, and two writers never get the same version number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mercato.errors import DataError, MercatoError

__all__ = ["LOADERS", "ModelRegistry", "ModelVersion", "hash_customers"]

#: How to load each artifact format: the ``format`` key of ``to_dict()`` output (before the
#: slash) -> ``module:function`` taking that dict and returning a fitted model.
LOADERS: dict[str, str] = {
    "mercato.clv": "mercato.models.clv:model_from_dict",
    "mercato.uplift": "mercato.models.uplift:model_from_dict",
    "mercato.propensity": "mercato.models.propensity:model_from_dict",
    "mercato.serving": "mercato.recommend.serving:load_registered",
}
#: the sub-folder of a version that holds a folder model's files (:meth:`ModelRegistry.save_folder`)
ARTIFACT = "artifact"

MANIFEST_FORMAT = "mercato.registry/1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION_DIR = re.compile(r"^v(\d+)$")


def hash_customers(ids: Iterable[Any], salt: bytes) -> np.ndarray:
    """Sorted unique 64-bit BLAKE2b hashes of the customer ids (as text), keyed by ``salt``.

    Examples
    --------
    >>> h = hash_customers(["c1", "c2", "c1"], b"salt")
    >>> len(h), bool(h[0] < h[1])
    (2, True)
    """
    out = np.fromiter(
        (
            int.from_bytes(
                hashlib.blake2b(str(i).encode(), digest_size=8, key=salt).digest(), "big"
            )
            for i in ids
        ),
        dtype=np.uint64,
    )
    return np.unique(out)


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks (registry artifacts, serving indexes)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelVersion:
    """One saved version of a model: where it is and what its manifest says."""

    name: str
    version: int
    path: Path
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", ""))

    def to_dict(self) -> dict[str, Any]:
        """The manifest plus name, version and path (for ``--json``)."""
        return {"name": self.name, "version": self.version, "path": str(self.path)} | {
            k: v for k, v in self.manifest.items() if k != "salt"
        }


class ModelRegistry:
    """Versioned models of a workspace (``<workspace>/models``).

    Parameters
    ----------
    root : Workspace or path
        A :class:`mercato.workspace.Workspace` (its ``models/`` folder) or a folder.

    Examples
    --------
    >>> import tempfile
    >>> from mercato.models.clv import GammaGammaFitter
    >>> reg = ModelRegistry(tempfile.mkdtemp())
    >>> m = GammaGammaFitter().fit([1, 2, 3, 1, 4, 2], [10.0, 12.0, 9.0, 30.0, 11.0, 14.0])
    >>> v = reg.save(m, name="spend", kind="clv-spend", customers=["a", "b", "c", "d", "e", "f"])
    >>> v.version, reg.load("spend").params_ == m.params_, reg.trained_on("spend", "b")
    (1, True, True)
    """

    def __init__(self, root: Any) -> None:
        path = getattr(root, "path", None)
        self.root = Path(path) / "models" if path is not None else Path(root)

    # -- writing ---------------------------------------------------------------------------

    def save(
        self,
        model: Any,
        *,
        name: str,
        kind: str,
        metrics: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        data_window: dict[str, Any] | None = None,
        customers: Iterable[Any] | None = None,
        notes: Iterable[str] = (),
        documents: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Save a fitted model as the next version of ``name``.

        Parameters
        ----------
        model
            Anything with a ``to_dict()`` giving plain JSON with a ``format`` key known to
            :data:`LOADERS`.
        name : str
            The model's name (letters, digits, ``_.-``; up to 64 characters).
        kind : str
            What it predicts (``clv``, ``uplift``, ``propensity``...).
        metrics, params, data_window : dict, optional
            Plain JSON: evaluation numbers, training parameters, the period of the data.
        customers : iterable, optional
            The ids of the customers it was trained on (stored hashed, see the module doc).
        documents : dict, optional
            More JSON files to keep beside the model (e.g. ``{"evaluation.json": {...}}``:
            the holdout tables the report shows); read back with :meth:`document`.
        """
        if not _NAME.match(name):
            raise DataError(
                f"invalid model name {name!r}",
                column="name",
                value=name,
                expected="letters, digits, '_', '.', '-' (up to 64 characters)",
            )
        artifact = model.to_dict()
        fmt = str(artifact.get("format", ""))
        _check_format(fmt)
        model_text = json.dumps(artifact, allow_nan=False, separators=(",", ":"))

        def write(tmp: Path) -> list[str]:
            (tmp / "model.json").write_text(model_text, encoding="utf-8")
            return ["model.json"]

        return self._save(
            name, write, kind=kind, fmt=fmt, model=artifact.get("model"), metrics=metrics,
            params=params, data_window=data_window, customers=customers, notes=notes,
            documents=documents,
            extra={"customers_fingerprint": artifact.get("customers_fingerprint")},
        )  # fmt: skip

    def save_folder(
        self,
        folder: str | Path,
        *,
        name: str,
        kind: str,
        fmt: str,
        model: str | None = None,
        metrics: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        data_window: dict[str, Any] | None = None,
        customers: Iterable[Any] | None = None,
        notes: Iterable[str] = (),
        documents: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Save a model that is a folder of files (a serving index of arrays) as the next
        version of ``name``: its files are hard-linked (copied across file systems) into
        ``vN/artifact/``, every file's sha256 goes into the manifest, and :meth:`load` hands
        the folder to the loader of ``fmt`` (:data:`LOADERS`). The files must not be changed
        in place afterwards (a serving index is rebuilt beside and swapped in, never edited),
        so linking shares them safely."""
        src = Path(folder)
        if not src.is_dir():
            raise DataError("no such folder to save", file=str(src))
        _check_format(fmt)

        def write(tmp: Path) -> list[str]:
            (tmp / ARTIFACT).mkdir()
            names = []
            for f in sorted(src.iterdir()):
                if not f.is_file():
                    continue
                target = tmp / ARTIFACT / f.name
                try:
                    os.link(f, target)
                except OSError:
                    shutil.copy2(f, target)
                names.append(f"{ARTIFACT}/{f.name}")
            return names

        return self._save(
            name, write, kind=kind, fmt=fmt, model=model, metrics=metrics, params=params,
            data_window=data_window, customers=customers, notes=notes, documents=documents,
            extra={"artifact": "folder"},
        )  # fmt: skip

    def _save(
        self,
        name: str,
        write: Any,
        *,
        kind: str,
        fmt: str,
        model: Any,
        metrics: dict[str, Any] | None,
        params: dict[str, Any] | None,
        data_window: dict[str, Any] | None,
        customers: Iterable[Any] | None,
        notes: Iterable[str],
        documents: dict[str, Any] | None,
        extra: dict[str, Any],
    ) -> ModelVersion:
        if not _NAME.match(name):
            raise DataError(
                f"invalid model name {name!r}",
                column="name",
                value=name,
                expected="letters, digits, '_', '.', '-' (up to 64 characters)",
            )
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        folder = self.root / name
        folder.mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".saving-", dir=folder))
        try:
            files = list(write(tmp))
            salt = secrets.token_bytes(16)
            n_customers = None
            for fname, doc in (documents or {}).items():
                if not re.match(r"^[a-z0-9_-]+\.json$", fname) or fname in (
                    "model.json",
                    "manifest.json",
                ):
                    raise DataError(
                        f"invalid document name {fname!r}", expected="a name like evaluation.json"
                    )
                (tmp / fname).write_text(json.dumps(doc, allow_nan=False), encoding="utf-8")
                files.append(fname)
            if customers is not None:
                hashed = hash_customers(customers, salt)
                np.save(tmp / "customers.npy", hashed, allow_pickle=False)
                n_customers = len(hashed)
                files.append("customers.npy")
            manifest: dict[str, Any] = {
                "format": MANIFEST_FORMAT,
                "kind": kind,
                "model_format": fmt,
                "model": model,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "mercato_version": _mercato_version(),
                "params": params or {},
                "metrics": metrics or {},
                "data_window": data_window or {},
                "customers": n_customers,
                **extra,
                "notes": list(notes),
                "salt": salt.hex(),
                "files": {f: sha256_file(tmp / f) for f in files},
            }
            json.dumps(manifest, allow_nan=False)  # fail before anything is in place
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            for f in tmp.rglob("*"):
                if f.is_dir():
                    os.chmod(f, 0o700)
                elif f.stat().st_nlink == 1:  # a linked file is shared: its mode stays
                    os.chmod(f, 0o600)
            while True:  # the next free version number; rename is atomic and fails if taken
                version = self._latest_number(name) + 1
                target = folder / f"v{version}"
                try:
                    os.rename(tmp, target)
                    break
                except OSError:
                    if not target.exists():
                        raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return ModelVersion(name, version, target, manifest)

    def delete(self, name: str, version: int | None = None) -> list[int]:
        """Delete one version (or every version) of a model; the versions deleted."""
        gone = [v.version for v in self.versions(name)] if version is None else [version]
        for v in gone:
            path = self.root / name / f"v{v}"
            if not path.is_dir():
                raise MercatoError(f"model {name!r} has no version {v}")
            shutil.rmtree(path)
        return gone

    # -- reading ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Names of the saved models, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._numbers(p.name))

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        return [self.get(name, v) for v in self._numbers(name)]

    def latest(self) -> list[ModelVersion]:
        """The newest version of every model."""
        return [self.get(n) for n in self.names()]

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version's manifest (the newest without ``version``); MercatoError if absent."""
        numbers = self._numbers(name)
        if not numbers:
            known = ", ".join(self.names()) or "none"
            raise MercatoError(f"no model named {name!r} in {self.root} (saved models: {known})")
        v = numbers[-1] if version is None else int(version)
        path = self.root / name / f"v{v}"
        if v not in numbers:
            raise MercatoError(
                f"model {name!r} has no version {v} (versions: {', '.join(map(str, numbers))})"
            )
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(
                f"the manifest of {name!r} v{v} cannot be read: {exc}",
                file=str(path / "manifest.json"),
            ) from exc
        return ModelVersion(name, v, path, manifest)

    def load(self, name: str, version: int | None = None) -> Any:
        """The fitted model (newest version without ``version``), checked against its sha256."""
        mv = self.get(name, version)
        if mv.manifest.get("artifact") == "folder":
            return self._load_folder(mv)
        path = mv.path / "model.json"
        expected = (mv.manifest.get("files") or {}).get("model.json")
        if expected is None or sha256_file(path) != expected:
            raise DataError(
                f"model {name!r} v{mv.version} does not match its manifest (changed on disk?)",
                file=str(path),
            )
        data = json.loads(path.read_text(encoding="utf-8"))
        fmt = str(data.get("format", "")).split("/")[0]
        if fmt not in LOADERS:
            raise DataError(f"unknown model format {fmt!r}", file=str(path))
        module, func = LOADERS[fmt].split(":")
        return getattr(importlib.import_module(module), func)(data)

    def _load_folder(self, mv: ModelVersion) -> Any:
        """A folder model: every file checked against the manifest, then its loader."""
        files = mv.manifest.get("files") or {}
        if not any(f.startswith(f"{ARTIFACT}/") for f in files):
            raise DataError(f"model {mv.name!r} v{mv.version}: its manifest lists no files",
                            file=str(mv.path))  # fmt: skip
        for rel, digest in files.items():
            if not rel.startswith(f"{ARTIFACT}/"):
                continue
            path = mv.path / rel
            if not path.exists() or sha256_file(path) != digest:
                raise DataError(
                    f"model {mv.name!r} v{mv.version} does not match its manifest "
                    f"(changed on disk?)",
                    file=str(path),
                )
        fmt = str(mv.manifest.get("model_format", "")).split("/")[0]
        if fmt not in LOADERS:
            raise DataError(f"unknown model format {fmt!r}", file=str(mv.path))
        module, func = LOADERS[fmt].split(":")
        return getattr(importlib.import_module(module), func)(mv.path / ARTIFACT)

    def artifact_folder(self, name: str, version: int | None = None) -> Path:
        """Where a folder model's files are (for workers that map them themselves)."""
        mv = self.get(name, version)
        if mv.manifest.get("artifact") != "folder":
            raise DataError(f"model {name!r} v{mv.version} is not a folder of files")
        return mv.path / ARTIFACT

    def document(self, name: str, file: str, version: int | None = None) -> Any:
        """A JSON document saved beside the model (``documents`` of :meth:`save`), checked.

        Returns None when that version has no such document.
        """
        mv = self.get(name, version)
        expected = (mv.manifest.get("files") or {}).get(file)
        path = mv.path / file
        if expected is None:
            return None
        if sha256_file(path) != expected:
            raise DataError(
                f"{file} of model {name!r} v{mv.version} does not match its manifest",
                file=str(path),
            )
        return json.loads(path.read_text(encoding="utf-8"))

    def trained_on(self, name: str, customer_id: Any, version: int | None = None) -> bool:
        """Whether that version of the model was trained on the customer."""
        mv = self.get(name, version)
        file = mv.path / "customers.npy"
        if not file.exists():
            raise MercatoError(f"model {name!r} v{mv.version} did not record its customers")
        hashed = np.load(file, allow_pickle=False)
        h = hash_customers([customer_id], bytes.fromhex(mv.manifest["salt"]))[0]
        i = int(np.searchsorted(hashed, h))
        return bool(i < len(hashed) and hashed[i] == h)

    def models_trained_on(self, customer_id: Any) -> list[ModelVersion]:
        """Every saved version whose training customers include ``customer_id``."""
        return [
            mv
            for n in self.names()
            for mv in self.versions(n)
            if (mv.path / "customers.npy").exists() and self.trained_on(n, customer_id, mv.version)
        ]

    # -- helpers ---------------------------------------------------------------------------

    def _numbers(self, name: str) -> list[int]:
        folder = self.root / name
        if not _NAME.match(name) or not folder.is_dir():
            return []
        found = (_VERSION_DIR.match(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def _latest_number(self, name: str) -> int:
        numbers = self._numbers(name)
        return numbers[-1] if numbers else 0


def _check_format(fmt: str) -> None:
    if fmt.split("/")[0] not in LOADERS:
        raise DataError(
            f"the registry cannot load models of format {fmt!r}",
            expected=", ".join(sorted(LOADERS)),
        )


def _mercato_version() -> str:
    from mercato import __version__

    return __version__
