"""GCL losses: score-to-weight transforms, the weighted symmetric InfoNCE and its multi-field form."""

from trainer.losses.gcl import LOSS_NORMALIZATIONS, GCLLoss, excluded_pairs, weighted_symmetric_infonce
from trainer.losses.multifield import (
    LOSS_FIELDS,
    LossTerm,
    MultiFieldGCLLoss,
    fused_document_features,
)
from trainer.losses.weights import (
    SCORE_COLUMNS,
    WEIGHT_TRANSFORMS,
    FlooredWeights,
    ScoreColumns,
    WeightTransform,
    make_weight_transform,
    with_weight_floor,
)

__all__ = [
    "LOSS_FIELDS",
    "LOSS_NORMALIZATIONS",
    "SCORE_COLUMNS",
    "WEIGHT_TRANSFORMS",
    "FlooredWeights",
    "GCLLoss",
    "LossTerm",
    "MultiFieldGCLLoss",
    "ScoreColumns",
    "WeightTransform",
    "excluded_pairs",
    "fused_document_features",
    "make_weight_transform",
    "weighted_symmetric_infonce",
    "with_weight_floor",
]
