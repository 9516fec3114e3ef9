"""``text-to-pose-import SRC -o OUT``: weights trained with upstream transcription's
``text_to_pose/diffusion`` (``IterativeGuidedPoseGenerationModel``, sign-language-processing/
transcription at commit 943b8e170a44c1c8867994f57821e5b3b4f00b0a) as a checkpoint of ours.

The sizes are read from the weights (hidden, feed-forward, layers, text/frame tables, steps);
the head count is not in the weights (``--heads``, upstream default 8). The imported model runs
the upstream computation: ``residual=false`` (the MLP output is ``x0``), ``length_scale=1``
(the length head predicts frames), ``length_loss=sample_mse``. Supported layout: MediaPipe
Holistic body + hands, 75 x 3, with the HamNoSys tokenizer (214 ids). Refused by name:
Ham2Pose's ``model.ckpt`` (OpenPose 137 x 2-D, a step MLP, a single-Linear length head: a
different architecture), upstream models trained on other pose layouts or tokenizers, and
checkpoints that are already ours. See docs/text-to-pose.md.

The output is a Lightning-style dict (``state_dict``, ``hyper_parameters``,
``hydra_overrides``, ``imported_from``) that ``make eval``, ``make sample`` and ``init_from=``
read; it loads with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path

import torch
from torch import Tensor

from motioncore.train.checkpoint_io import package_checkpoint, save_checkpoint
from text_to_pose.data.holistic import N_KEYPOINTS
from text_to_pose.data.tokenizer import HamNoSysTokenizer

UPSTREAM = "sign-language-processing/transcription"
UPSTREAM_COMMIT = "943b8e170a44c1c8867994f57821e5b3b4f00b0a"

# upstream prefix -> ours (inside the LightningModule's ``model``)
PREFIXES = (
    ("text_encoder.embedding.", "model.text_encoder.embed."),
    ("text_encoder.positional_embedding.", "model.text_encoder.position."),
    ("text_encoder.encoder.layers.", "model.text_encoder.encoder.layers."),
    ("seq_length.fc_mu.", "model.length.mu."),
    ("seq_length.fc_var.", "model.length.log_var."),
    ("pose_encoder.pose_projection.", "model.pose_encoder.project."),
    ("pose_encoder.positional_embeddings.", "model.pose_encoder.position."),
    ("pose_encoder.pose_encoder.layers.", "model.pose_encoder.encoder.layers."),
    ("step_embedding.", "model.step."),
    ("pose_diff_projection.", "model.head."),
    ("pose_correction.", "model.correction.mlp."),
)
REQUIRED = ("text_encoder.embedding.weight", "seq_length.fc_mu.weight",
            "pose_encoder.pose_projection.weight", "step_embedding.weight",
            "pose_diff_projection.2.weight", "pose_correction.0.weight")  # fmt: skip
# What the upstream training script passes, and what is ours but must be off for its weights.
UPSTREAM_HPARAMS = dict(
    text_encoder_dropout=0.1, pose_encoder_dropout=0.0, residual=False, length_scale=1.0,
    length_loss="sample_mse", lr=1e-4, text_drop_prob=0.1, noise_epsilon=1e-2,
    smoothness_weight=1e-3, length_weight=2e-5, guidance=2.5,
)  # fmt: skip


def _refuse_other_models(state: dict[str, Tensor], source: str) -> None:
    keys = set(state)
    if any(k.startswith("model.text_encoder.") for k in keys):
        raise ValueError(
            f"{source} is already a text-to-pose checkpoint of this package; use it directly "
            "(CKPT=... or init_from=...) instead of importing it"
        )
    if "step_encoder.0.weight" in keys or "seq_length.weight" in keys:
        raise ValueError(
            f"{source} is a Ham2Pose checkpoint (rotem-shalev/Ham2Pose: OpenPose 137 x 2-D "
            "keypoints, a step MLP and a single-Linear length head); its architecture and "
            "pose layout differ from the transcription model this package implements, so it "
            "cannot be imported (see docs/text-to-pose.md)"
        )
    missing = [k for k in REQUIRED if k not in keys]
    if missing:
        example = sorted(keys)[:5]
        raise ValueError(
            f"{source} is not an upstream text_to_pose diffusion checkpoint ({UPSTREAM}): it "
            f"lacks {missing} (its first keys are {example})"
        )


def _count_layers(state: dict[str, Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def convert_state_dict(
    state: dict[str, Tensor], heads: int = 8, source: str = "checkpoint"
) -> tuple[dict[str, Tensor], dict, list[str]]:
    """Upstream ``state_dict`` -> (our LightningModule ``state_dict``, the module's keyword
    arguments, the upstream keys that have no counterpart)."""
    _refuse_other_models(state, source)
    vocab, hidden = state["text_encoder.embedding.weight"].shape
    expected_vocab = len(HamNoSysTokenizer())
    if vocab != expected_vocab:
        raise ValueError(
            f"{source}: the text embedding has {vocab} rows, but the HamNoSys tokenizer has "
            f"{expected_vocab} ids; a model trained with another tokenizer (e.g. SignWriting) "
            "is not supported"
        )
    features = state["pose_encoder.pose_projection.weight"].shape[1]
    if features != N_KEYPOINTS * 3:
        raise ValueError(
            f"{source}: the pose projection takes {features} features, not the "
            f"{N_KEYPOINTS} x 3 of MediaPipe Holistic body + hands; models trained on other "
            "layouts (e.g. OpenPose 137 x 2 = 274) are not supported"
        )
    if hidden % heads:
        raise ValueError(f"--heads {heads} does not divide the hidden size {hidden}")
    kwargs = dict(
        UPSTREAM_HPARAMS,
        hidden=int(hidden),
        heads=heads,
        ff=int(state["text_encoder.encoder.layers.0.linear1.weight"].shape[0]),
        text_layers=_count_layers(state, "text_encoder.encoder.layers."),
        pose_layers=_count_layers(state, "pose_encoder.pose_encoder.layers."),
        max_text_len=int(state["text_encoder.positional_embedding.weight"].shape[0]),
        max_frames=int(state["pose_encoder.positional_embeddings.weight"].shape[0]),
        num_steps=int(state["step_embedding.weight"].shape[0]),
    )
    out: dict[str, Tensor] = {}
    unmapped: list[str] = []
    for key, value in state.items():
        for old, new in PREFIXES:
            if key.startswith(old):
                out[new + key[len(old) :]] = value.detach().clone().float()
                break
        else:
            unmapped.append(key)
    out["seen_length_sum"] = torch.zeros((), dtype=torch.float64)
    out["seen_length_count"] = torch.zeros((), dtype=torch.float64)
    return out, kwargs, sorted(unmapped)


def hydra_overrides(kwargs: dict) -> list[str]:
    """Overrides that rebuild the imported architecture and its upstream behaviour."""

    def value(v: object) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    return [f"model.{k}={value(v)}" for k, v in kwargs.items()]


def _read(path: Path, allow_pickle: bool) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{path} holds pickled objects besides tensors (usual for old PyTorch Lightning "
            "checkpoints); if you trust the file, rerun with --allow-pickle"
        ) from e
    except Exception as e:
        raise ValueError(
            f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict")
    state = ckpt.get("state_dict", ckpt)
    if not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: its state_dict holds non-tensor values; not a model checkpoint")
    return state


def import_checkpoint(src: str | Path, out: str | Path, heads: int = 8,
                      allow_pickle: bool = False) -> dict:  # fmt: skip
    """Convert ``src`` and write ``out``; returns the written dict."""
    src, out = Path(src), Path(out)
    state, kwargs, unmapped = convert_state_dict(_read(src, allow_pickle), heads, str(src))
    ckpt = package_checkpoint(
        state_dict=state,
        hyper_parameters=kwargs,
        hydra_overrides=hydra_overrides(kwargs),
        imported_from={
            "source": str(src),
            "upstream": f"{UPSTREAM}@{UPSTREAM_COMMIT}",
            "unmapped_keys": unmapped,
        },
    )
    save_checkpoint(ckpt, out)
    return ckpt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="text-to-pose-import", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "src", help="upstream checkpoint (.ckpt of IterativeGuidedPoseGenerationModel)"
    )
    parser.add_argument("-o", "--output", required=True, help="where to write our checkpoint")
    parser.add_argument("--heads", type=int, default=8, help="attention heads (not in the weights)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="load a checkpoint that holds pickled objects (trusted files only)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        ckpt = import_checkpoint(args.src, args.output, args.heads, args.allow_pickle)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"text-to-pose-import: error: {e}\n")
    print(f"wrote {args.output}")
    print("architecture overrides: " + " ".join(ckpt["hydra_overrides"]))
    unmapped = ckpt["imported_from"]["unmapped_keys"]
    print(f"unmapped upstream keys ({len(unmapped)}): {', '.join(unmapped) or 'none'}")


if __name__ == "__main__":
    main()
