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

__all__ = [
    "__version__",
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
