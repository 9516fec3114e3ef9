"""Length masks, keyframe schemes, keyframe dropout, feature expansion and loss masks."""

from motioncore.masking.keyframes import (
    SCHEMES,
    expand_to_features,
    joint_to_feature_matrix,
    keyframe_dropout,
    keyframe_joint_mask,
    length_mask,
    loss_mask,
)

__all__ = [
    "SCHEMES",
    "expand_to_features",
    "joint_to_feature_matrix",
    "keyframe_dropout",
    "keyframe_joint_mask",
    "length_mask",
    "loss_mask",
]
