"""CHAMP-style reference-image human animation with music, pose and custom guidance."""

from omegaconf import OmegaConf

# accelerate's --mixed_precision values -> Lightning's Trainer(precision=...); Lightning values
# pass through unchanged.
MIXED_PRECISION = {"no": "32-true", "fp16": "16-mixed", "bf16": "bf16-mixed"}


def lightning_precision(value: str) -> str:
    value = str(value)
    if value in MIXED_PRECISION:
        return MIXED_PRECISION[value]
    if value in MIXED_PRECISION.values():
        return value
    raise ValueError(
        f"mixed_precision={value!r} is unknown; use one of {sorted(MIXED_PRECISION)} "
        f"(or a Lightning precision {sorted(MIXED_PRECISION.values())})"
    )


OmegaConf.register_new_resolver("champ_precision", lightning_precision, replace=True)
