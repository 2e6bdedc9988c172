"""Mercato: the open-source engine that brings AI to digital marketing.

The public surface is what ``__all__`` lists; everything else may change without notice.
"""

__version__ = "0.1.0"

from mercato.config import Settings  # noqa: E402
from mercato.data.ingest import IngestReport, Mapping, ingest_file, ingest_frame  # noqa: E402
from mercato.data.schema import TABLES, get_table  # noqa: E402
from mercato.data.warehouse import Warehouse  # noqa: E402
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
from mercato.workspace import Workspace  # noqa: E402

#: Analyses, imported on first use (they pull in scipy and scikit-learn).
_LAZY = {
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
}


def __getattr__(name: str):  # PEP 562: lazy public names
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mercato' has no attribute {name!r}")


__all__ = [
    "__version__",
    "attribute",
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
    "run_demo",
    "AuthError",
    "ConfigError",
    "ConsentError",
    "DataError",
    "DatasetNotFoundError",
    "IngestReport",
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
