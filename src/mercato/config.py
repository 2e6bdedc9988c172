"""Settings: resolved once per call site, never at import.

Values come, in order of precedence, from keyword arguments, ``MERCATO_*`` environment variables,
the workspace's ``mercato.toml`` and the defaults below. Secrets never live in ``mercato.toml``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mercato.errors import ConfigError

DEFAULT_WORKSPACE = "mercato-workspace"


def default_workspace() -> Path:
    """The workspace folder: ``MERCATO_HOME`` or ``./mercato-workspace``."""
    return Path(os.environ.get("MERCATO_HOME") or DEFAULT_WORKSPACE).expanduser()


class Settings(BaseSettings):
    """Every setting Mercato reads.

    Examples
    --------
    >>> s = Settings(workspace="/tmp/ws")
    >>> s.warehouse_url_resolved().startswith("duckdb://")
    True
    """

    model_config = SettingsConfigDict(env_prefix="MERCATO_", extra="ignore", populate_by_name=True)

    workspace: Path = Field(default_factory=default_workspace, validation_alias="MERCATO_HOME")
    warehouse_url: str | None = Field(
        default=None,
        description="Ibis URL of the warehouse; default: the workspace's warehouse.duckdb. "
        "Example: postgresql://user@127.0.0.1:5432/db?schema=mercato",
    )
    data_dir: Path | None = Field(default=None, description="folder of the public data sets")
    ingest_batch_rows: int = Field(default=250_000, ge=1_000)
    ingest_max_field_bytes: int = Field(default=1_048_576, ge=1_024)
    ingest_max_problems: int = Field(default=1_000, ge=1)
    duckdb_memory_limit: str | None = Field(default=None, description="e.g. '4GB'")
    duckdb_threads: int | None = Field(default=None, ge=1)

    @field_validator("workspace", mode="before")
    @classmethod
    def _expand(cls, v: Any) -> Any:
        return Path(v).expanduser() if v is not None else v

    def warehouse_url_resolved(self) -> str:
        if self.warehouse_url:
            return self.warehouse_url
        return f"duckdb://{(self.workspace / 'warehouse.duckdb').resolve()}"

    @classmethod
    def load(cls, workspace: str | Path | None = None, **overrides: Any) -> Settings:
        """Settings for a workspace: defaults < mercato.toml < environment < ``overrides``."""
        ws = Path(workspace).expanduser() if workspace else None
        try:
            probe = cls(workspace=ws) if ws else cls()
        except ValueError as exc:  # a bad MERCATO_* variable
            raise ConfigError(f"invalid settings in the environment: {_first_error(exc)}") from None
        file_values: dict[str, Any] = {}
        toml_path = probe.workspace / "mercato.toml"
        if toml_path.exists():
            try:
                raw = tomllib.loads(toml_path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{toml_path}: not valid TOML: {exc}") from exc
            file_values = _flatten_toml(raw)
        env_set = {name for name in cls.model_fields if f"MERCATO_{name.upper()}" in os.environ}
        values = {k: v for k, v in file_values.items() if k not in env_set}
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["workspace"] = probe.workspace
        try:
            return cls(**values)
        except ValueError as exc:
            raise ConfigError(f"invalid settings ({toml_path}): {_first_error(exc)}") from None


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            e = errors()[0]
            where = ".".join(str(x) for x in e.get("loc", ()))
            return f"{where}: {e.get('msg')} (got {e.get('input')!r})"
        except Exception:  # noqa: BLE001 - fall back to the plain text
            pass
    return str(exc).splitlines()[0]


def _flatten_toml(raw: dict[str, Any]) -> dict[str, Any]:
    """``[warehouse] url = ...`` becomes ``warehouse_url``; top-level keys stay."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            for sub, subval in value.items():
                out[f"{key}_{sub}"] = subval
        else:
            out[key] = value
    out.pop("mercato_version", None)  # informational: which version made the workspace
    known = set(Settings.model_fields)
    unknown = sorted(set(out) - known)
    if unknown:
        raise ConfigError(
            f"mercato.toml has unknown settings: {', '.join(unknown)}",
            hint=f"known settings: {', '.join(sorted(known))}",
        )
    return out
