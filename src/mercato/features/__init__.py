"""Point-in-time customer features and labels for propensity, scoring and uplift models."""

from mercato.features.builder import (
    DEFAULT_EVENT_TYPES,
    DEFAULT_WINDOWS,
    LABELS,
    FeatureSet,
    build_features,
    build_training_set,
)

__all__ = [
    "DEFAULT_EVENT_TYPES",
    "DEFAULT_WINDOWS",
    "LABELS",
    "FeatureSet",
    "build_features",
    "build_training_set",
]
