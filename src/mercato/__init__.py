"""Mercato: the open-source engine that brings AI to digital marketing.

The public surface is what ``__all__`` lists; everything else may change without notice.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from mercato.errors import (  # noqa: E402
    AuthError,
    ConfigError,
    ConsentError,
    DataError,
    DatasetNotFoundError,
    MercatoError,
    NotFittedError,
    WorkspaceError,
)

if TYPE_CHECKING:  # the names below load on first use (see _LAZY)
    from mercato.config import Settings
    from mercato.data.ingest import IngestReport, Mapping, ingest_file, ingest_frame
    from mercato.data.schema import TABLES, get_table
    from mercato.data.warehouse import Warehouse
    from mercato.features import build_features
    from mercato.models.lifetime import run_clv
    from mercato.models.registry import ModelRegistry
    from mercato.workspace import Workspace

#: Public names imported on first use: ``import mercato`` (or a web worker importing a model
#: module) does not load the engine stack (DuckDB, Ibis, pyarrow) nor scipy and scikit-learn.
_LAZY = {
    "Settings": "mercato.config",
    "IngestReport": "mercato.data.ingest",
    "Mapping": "mercato.data.ingest",
    "ingest_file": "mercato.data.ingest",
    "ingest_frame": "mercato.data.ingest",
    "TABLES": "mercato.data.schema",
    "get_table": "mercato.data.schema",
    "Warehouse": "mercato.data.warehouse",
    "Workspace": "mercato.workspace",
    "profile": "mercato.analytics.profile",
    "kpis": "mercato.analytics.kpis",
    "rfm": "mercato.analytics.rfm",
    "cohorts": "mercato.analytics.cohorts",
    "funnel": "mercato.analytics.funnels",
    "cluster_customers": "mercato.analytics.segments",
    "attribute": "mercato.analytics.attribution",
    "read_paths_file": "mercato.analytics.attribution",
    "paths_from_warehouse": "mercato.analytics.attribution",
    "generate_shop": "mercato.data.synth",
    "load_dataset": "mercato.data.datasets",
    "build_report": "mercato.report.build",
    "run_demo": "mercato.demo",
    "run_clv": "mercato.models.lifetime",
    "build_features": "mercato.features",
    "ModelRegistry": "mercato.models.registry",
}


def __getattr__(name: str):  # PEP 562: lazy public names
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mercato' has no attribute {name!r}")


__all__ = [
    "__version__",
    "attribute",
    "build_features",
    "build_report",
    "cluster_customers",
    "cohorts",
    "funnel",
    "generate_shop",
    "kpis",
    "load_dataset",
    "paths_from_warehouse",
    "profile",
    "read_paths_file",
    "rfm",
    "run_clv",
    "run_demo",
    "AuthError",
    "ConfigError",
    "ConsentError",
    "DataError",
    "DatasetNotFoundError",
    "IngestReport",
    "ModelRegistry",
    "Mapping",
    "MercatoError",
    "NotFittedError",
    "Settings",
    "TABLES",
    "Warehouse",
    "Workspace",
    "WorkspaceError",
    "get_table",
    "ingest_file",
    "ingest_frame",
]
