"""Parity fixtures of text-to-pose from the upstream code (never run by CI).

Upstream: sign-language-processing/transcription at commit
943b8e170a44c1c8867994f57821e5b3b4f00b0a (``text_to_pose/diffusion`` +
``_shared``). Builds ``IterativeGuidedPoseGenerationModel`` at a tiny size with
``torch.manual_seed(0)``, runs fixed inputs through the text encoder, the length head, the
first-pose correction, one pose refinement, and two full 10-step refinements (with and without
classifier-free guidance, the upstream blend schedule), and saves
``{"upstream_commit", "config", "state_dict", "inputs", "outputs"}`` to
``tests/fixtures/upstream/text-to-pose/tiny.pt``.

Regenerate (from the repository root):

    # an extracted checkout of the upstream repository at the commit above
    git clone https://github.com/sign-language-processing/transcription /tmp/transcription
    git -C /tmp/transcription checkout 943b8e170a44c1c8867994f57821e5b3b4f00b0a
    # upstream imports fontTools (tokenizer) and fastdtw (metrics) that we do not depend on
    uv pip install --target /tmp/t2p-up --no-deps fonttools==4.68.0 fastdtw==0.3.4
    PYTHONPATH=/tmp/t2p-up uv run --frozen --all-packages python tools/upstream/text_to_pose.py \
        --upstream /tmp/transcription

It also needs ``pytorch_lightning``, ``wandb`` and ``pose_format``, which the workspace has.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

COMMIT = "943b8e170a44c1c8867994f57821e5b3b4f00b0a"
CONFIG = dict(hidden=32, heads=2, ff=64, text_layers=2, pose_layers=2, max_seq_size=96,
              num_steps=10)  # fmt: skip
TEXTS = ["\ue000\ue071\ue012\ue029\ue03f", "\ue001\ue0e9"]
OUT = Path(__file__).resolve().parents[2] / "tests/fixtures/upstream/text-to-pose/tiny.pt"


def build(upstream: Path):
    sys.path.insert(0, str(upstream))
    from _shared.models.pose_encoder import PoseEncoderModel
    from _shared.tokenizers import HamNoSysTokenizer
    from text_to_pose.diffusion.src.model.iterative_decoder import (
        IterativeGuidedPoseGenerationModel,
    )
    from text_to_pose.diffusion.src.model.text_encoder import TextEncoderModel

    c = CONFIG
    torch.manual_seed(0)
    pose_encoder = PoseEncoderModel(pose_dims=(75, 3), hidden_dim=c["hidden"],
                                    encoder_depth=c["pose_layers"], encoder_heads=c["heads"],
                                    encoder_dim_feedforward=c["ff"],
                                    max_seq_size=c["max_seq_size"], dropout=0)  # fmt: skip
    text_encoder = TextEncoderModel(tokenizer=HamNoSysTokenizer(), max_seq_size=c["max_seq_size"],
                                    hidden_dim=c["hidden"], num_layers=c["text_layers"],
                                    dim_feedforward=c["ff"], encoder_heads=c["heads"])  # fmt: skip
    model = IterativeGuidedPoseGenerationModel(pose_encoder=pose_encoder,
                                               text_encoder=text_encoder,
                                               hidden_dim=c["hidden"],
                                               max_seq_size=c["max_seq_size"],
                                               num_steps=c["num_steps"])  # fmt: skip
    # Random weights make every output depend on them; the zero-initialised padding row and
    # the small default std of some layers would hide mapping errors otherwise.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", type=Path, required=True, help="extracted checkout")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    model = build(args.upstream)
    g = torch.Generator().manual_seed(1)

    tokenized = model.text_encoder.tokenizer(TEXTS)
    encoded = model.text_encoder(TEXTS)
    valid = ~encoded["mask"]
    lengths_mu, lengths_log_var = [], []
    for text in TEXTS:  # upstream predicts lengths one text at a time
        pooled = torch.mean(model.text_encoder([text])["data"], dim=1)
        lengths_mu.append(model.seq_length(pooled)[0, 0])
        lengths_log_var.append(model.seq_length.fc_var(pooled)[0, 0])

    x_t = torch.randn(2, 7, 75, 3, generator=g)
    step = torch.tensor([9, 3])
    refined = model.refine_pose_sequence(
        {"data": x_t, "mask": torch.zeros(2, 7, dtype=torch.bool)}, encoded, step
    )

    first_pose = torch.randn(75, 3, generator=g)
    first_pose[25:33] = 0  # legs hidden, as the data pipeline stores them
    first_pose[40:44] = 0  # a few missing hand points
    corrected = model.correct_pose(first_pose.clone())
    guided = torch.stack(list(model.forward(TEXTS[0], first_pose.clone(),
                                            force_sequence_length=12,
                                            classifier_free_guidance=2.5)))  # fmt: skip
    plain = torch.stack(list(model.forward(TEXTS[1], first_pose.clone(),
                                           force_sequence_length=9)))  # fmt: skip

    fixture = {
        "upstream_commit": COMMIT,
        "config": dict(CONFIG),
        "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
        "inputs": {
            "texts": list(TEXTS),
            "token_ids": tokenized["tokens_ids"].long(),
            "text_valid": valid,
            "x_t": x_t,
            "step": step,
            "first_pose": first_pose,
            "guidance": 2.5,
            "forced_lengths": [12, 9],
        },
        "outputs": {
            "betas": model.betas.float().clone(),
            "text_encoding": encoded["data"] * valid[..., None],
            "length_mu": torch.stack(lengths_mu),
            "length_log_var": torch.stack(lengths_log_var),
            "refined": refined,
            "corrected_first_pose": corrected,
            "refinement_guided": guided,
            "refinement_plain": plain,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
