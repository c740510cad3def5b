"""GCL losses: score-to-weight transforms, the weighted symmetric InfoNCE and its multi-field form."""

from trainer.losses.gcl import GCLLoss, excluded_pairs, weighted_symmetric_infonce
from trainer.losses.multifield import (
    LOSS_FIELDS,
    LossTerm,
    MultiFieldGCLLoss,
    fused_document_features,
)
from trainer.losses.weights import (
    SCORE_COLUMNS,
    WEIGHT_TRANSFORMS,
    ScoreColumns,
    WeightTransform,
    make_weight_transform,
)

__all__ = [
    "LOSS_FIELDS",
    "SCORE_COLUMNS",
    "WEIGHT_TRANSFORMS",
    "GCLLoss",
    "LossTerm",
    "MultiFieldGCLLoss",
    "ScoreColumns",
    "WeightTransform",
    "excluded_pairs",
    "fused_document_features",
    "make_weight_transform",
    "weighted_symmetric_infonce",
]
