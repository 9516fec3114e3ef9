"""CHAMP-style reference-image human animation with music, pose and custom guidance."""

import torch
from omegaconf import OmegaConf

# accelerate's --mixed_precision values -> Lightning's Trainer(precision=...); Lightning values
# pass through unchanged.
MIXED_PRECISION = {"no": "32-true", "fp16": "16-mixed", "bf16": "bf16-mixed"}


def native_bf16() -> bool:
    """Whether bf16 matmuls run natively: a CUDA GPU with bf16, or (no GPU) a CPU whose oneDNN
    has bf16 kernels (AVX-512-BF16 or AMX). Elsewhere bf16 is emulated and slower than fp32."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check is not None and check())


def lightning_precision(value: str) -> str:
    value = str(value)
    if value == "auto":
        return "bf16-mixed" if native_bf16() else "32-true"
    if value in MIXED_PRECISION:
        return MIXED_PRECISION[value]
    if value in MIXED_PRECISION.values():
        return value
    raise ValueError(
        f"mixed_precision={value!r} is unknown; use auto or one of {sorted(MIXED_PRECISION)} "
        f"(or a Lightning precision {sorted(MIXED_PRECISION.values())})"
    )


OmegaConf.register_new_resolver("champ_precision", lightning_precision, replace=True)
