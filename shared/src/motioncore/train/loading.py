"""The one place checkpoints are read: resume, evaluation, sampling, ``init_from``, stage-1 weights.

Every reader goes through :func:`read_checkpoint` (``torch.load(weights_only=True)``: a
checkpoint is tensors, numbers, strings and plain containers, never code) and
:func:`load_weights`; both turn the failures a user can cause (missing, empty, truncated or
foreign files, weights of another model) into one error that names the file and the fix.

Accepted layouts: a Lightning checkpoint written by ``make train``, a package checkpoint written
by an upstream importer (``{"state_dict", "hyper_parameters", "pytorch-lightning_version"}``) and,
for weights-only uses, a bare state dict of tensors.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

RUN_INFO_KEY = "motioncore"  # {"package": ..., "model": <_target_>} written by every run
HINT = "runs/<package>/<run>/checkpoints/last.ckpt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message names the file and what to do."""


def read_checkpoint(path: str | Path, role: str = "ckpt_path") -> dict[str, Any]:
    """Load ``path`` (given as config key ``role``) as a dict with a ``state_dict`` entry."""
    path = Path(path)
    where = f"{role}={path}"
    if not path.is_file():
        how = "CKPT=<file> with make, " if role == "ckpt_path" else ""
        raise FileNotFoundError(f"{where} does not exist; pass {how}a file such as {HINT}")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"{where} is an empty file (an interrupted copy or download?); copy it again or "
            f"point {role} at a complete checkpoint such as {HINT}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            raise CheckpointError(
                f"{where} holds Python objects besides tensors, numbers and strings, so it is "
                "not loaded (that could run code). Re-save it as a plain dict "
                "{'state_dict': ..., 'hyper_parameters': {...}} of tensors and plain values."
            ) from None
        raise CheckpointError(_unreadable(where, role, e)) from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(_unreadable(where, role, e)) from None
    if isinstance(state, Mapping) and "state_dict" not in state and _all_tensors(state):
        state = {"state_dict": dict(state)}
    if not isinstance(state, Mapping) or not isinstance(state.get("state_dict"), Mapping):
        keys = sorted(state)[:8] if isinstance(state, Mapping) else type(state).__name__
        raise CheckpointError(
            f"{where} has no 'state_dict' (found {keys}); expected a checkpoint written by "
            f"make train ({HINT}) or by a package's upstream importer"
        )
    return dict(state)


def _unreadable(where: str, role: str, error: BaseException) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if reason.startswith("Weights only load failed"):
        reason = "not a PyTorch file"
    return (
        f"{where} is not a readable PyTorch checkpoint ({reason[:120]}); it is truncated or not a "
        f"checkpoint at all. Point {role} at a last.ckpt written by make train ({HINT})."
    )


def _all_tensors(state: Mapping) -> bool:
    return bool(state) and all(isinstance(v, torch.Tensor) for v in state.values())


def check_run_info(state: Mapping, path: str | Path, role: str, package: str, target: str) -> None:
    """Refuse a checkpoint that a run of another package (or model class) wrote."""
    info = state.get(RUN_INFO_KEY)
    if not isinstance(info, Mapping):
        return
    if info.get("package") != package or info.get("model") != target:
        raise CheckpointError(
            f"{role}={path} was written by {info.get('package')} (model {info.get('model')}), "
            f"but this run is {package} (model {target}). Use MODEL={info.get('package')} for "
            f"this checkpoint, or point {role} at a {package} checkpoint."
        )


def load_weights(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    path: str | Path,
    role: str = "ckpt_path",
    strict: bool = True,
) -> tuple[list[str], list[str]]:
    """Copy ``state_dict`` into ``module``; returns ``(missing, unexpected)`` key lists.

    Shape mismatches and a checkpoint sharing no key with the module are always errors;
    missing/unexpected keys are errors only when ``strict``.
    """
    own = module.state_dict()
    shared = [k for k in state_dict if k in own]
    if not shared:
        raise CheckpointError(
            f"{role}={path}: none of its {len(state_dict)} weights match this model (checkpoint "
            f"keys look like {_first(state_dict)}, the model's like {_first(own)}). It belongs "
            "to another package or model: pass the matching MODEL/experiment, or another file."
        )
    wrong = [k for k in shared if state_dict[k].shape != own[k].shape]
    if wrong:
        shapes = ", ".join(
            f"{k}: checkpoint {list(state_dict[k].shape)} vs model {list(own[k].shape)}"
            for k in wrong[:3]
        )
        raise CheckpointError(
            f"{role}={path} does not fit the configured model ({len(wrong)} shape mismatches: "
            f"{shapes}). Pass the model/experiment overrides it was trained with."
        )
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"{role}={path} does not fit the configured model: missing {_first(missing)}, "
            f"unexpected {_first(unexpected)}. Pass the model/experiment overrides it was "
            "trained with, or use init_from=<ckpt> to load the matching weights only."
        )
    module.load_state_dict(dict(state_dict), strict=False)
    return missing, unexpected


def _first(keys, n: int = 3) -> str:
    keys = list(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return (", ".join(keys[:n]) or "none") + more
