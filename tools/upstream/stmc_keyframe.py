"""Parity fixtures for ``stmc-keyframe`` from STMC's own code (not run in CI).

Upstream: nv-tlabs/stmc at a8b2a1f (``src/model/{mdm_smpl,gaussian,diffusion_base}.py``,
``src/stmc.py``, ``src/normalizer.py``).

Regenerate (the workspace python provides torch; STMC's old libraries go in a scratch folder):

    git clone https://github.com/nv-tlabs/stmc /tmp/stmc-up-src && git -C /tmp/stmc-up-src checkout a8b2a1f
    uv pip install --python .venv/bin/python --target /tmp/stmc-up --no-deps \
        einops==0.6.1 pytorch-lightning==2.0.9 "setuptools<70"
    OMP_NUM_THREADS=1 uv run --frozen --all-packages python tools/upstream/stmc_keyframe.py \
        --stmc /tmp/stmc-up-src --deps /tmp/stmc-up

Writes ``tests/fixtures/upstream/stmc-keyframe/{denoiser,reverse_step,collage}.pt``, each
``{"upstream_commit", "config", "state_dict", "inputs", "outputs"}``. ``state_dict`` is the
upstream ``GaussianDiffusion`` state dict (``denoiser.*`` plus the ``motion_normalizer`` and
``text_normalizer`` buffers), i.e. what STMC's ``last.ckpt`` holds under ``state_dict``; the
tests import it with ``stmc-keyframe-import``. All weights get a small random perturbation so
that LayerNorm weights/biases and every other tensor show up in the outputs.

- ``denoiser``: ``TransformerDenoiser`` forward on fixed x_t [2, 14, 205] (second sequence padded
  to 9 frames), t and raw text embeddings (z-scored by the text normaliser first, as upstream).
- ``reverse_step``: one ``GaussianDiffusion.p_sample`` at t=37 of 100 with CFG 2.5: the posterior
  mean plus ``posterior_variance * z``; z is the first draw of ``torch.Generator().manual_seed
  (SEED)`` (what our scheduler draws with that generator).
- ``collage``: ``stmc_forward`` of one 2-interval timeline (walk on the legs 0-2 s, right-hand
  wave 0.6-1.6 s, overlap 0.5 s) with ``timesteps=2`` (2 denoising steps), CFG 2.5; the initial
  noise and the step noise are successive draws of the seeded generator (the order in which
  ``motioncore.diffusion.sample`` draws them). Raw text embeddings per text are in ``inputs``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import torch

UPSTREAM_COMMIT = "nv-tlabs/stmc@a8b2a1f"
SEED = 7
OUT = Path(__file__).resolve().parents[2] / "tests/fixtures/upstream/stmc-keyframe"
CONFIG = {
    "nfeats": 205, "tx_dim": 384, "latent_dim": 32, "ff_size": 64, "num_layers": 2,
    "num_heads": 4, "dropout": 0.1, "nb_registers": 2, "activation": "gelu",
}  # fmt: skip
TIMELINE = "a person walks forward # 0.0 # 2.0 # legs\na person waves the right hand # 0.6 # 1.6 # right hand\n"
FPS, OVERLAP_S, GUIDANCE = 20.0, 0.5, 2.5


@contextlib.contextmanager
def seeded_noise(generator: torch.Generator):
    """Make upstream's ``torch.randn``/``torch.randn_like`` successive draws of ``generator``."""
    randn, randn_like = torch.randn, torch.randn_like
    torch.randn = lambda *shape, device=None, **kw: randn(*shape, generator=generator)
    torch.randn_like = lambda t: randn(t.shape, generator=generator, dtype=t.dtype)
    try:
        yield
    finally:
        torch.randn, torch.randn_like = randn, randn_like


def build(stats_dir: Path, timesteps: int):
    from src.model.gaussian import GaussianDiffusion
    from src.model.mdm_smpl import TransformerDenoiser
    from src.model.schedule.cosine import CosineBetaSchedule
    from src.normalizer import Normalizer

    torch.manual_seed(0)
    denoiser = TransformerDenoiser(**CONFIG)
    diffusion = GaussianDiffusion(
        denoiser, CosineBetaSchedule(s=0.008), timesteps,
        Normalizer(str(stats_dir / "motion_stats")), Normalizer(str(stats_dir / "text_stats")),
        prediction="x",
    )  # fmt: skip
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in denoiser.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return diffusion.eval()


def write_stats(root: Path) -> None:
    g = torch.Generator().manual_seed(2)
    for name, dim in (("motion_stats", CONFIG["nfeats"]), ("text_stats", CONFIG["tx_dim"])):
        (root / name).mkdir(parents=True)
        torch.save(0.3 * torch.randn(dim, generator=g), root / name / "mean.pt")
        torch.save(0.5 + torch.rand(dim, generator=g), root / name / "std.pt")


def tx(raw: torch.Tensor) -> dict:
    return {"x": raw[:, None], "length": torch.ones(len(raw), dtype=torch.long)}


def save(name: str, config: dict, diffusion, inputs: dict, outputs: dict) -> None:
    state = {k: v.detach().clone() for k, v in diffusion.state_dict().items()}
    blob = {"upstream_commit": UPSTREAM_COMMIT, "config": config, "state_dict": state,
            "inputs": inputs, "outputs": outputs}  # fmt: skip
    torch.save(blob, OUT / f"{name}.pt")
    print(f"wrote {OUT / name}.pt ({(OUT / f'{name}.pt').stat().st_size / 1e6:.2f} MB)")


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stmc", required=True, help="STMC checkout at a8b2a1f (holds src/)")
    ap.add_argument("--deps", required=True, help="folder with einops, pytorch-lightning")
    args = ap.parse_args()
    sys.path[:0] = [args.deps, args.stmc]
    from src.stmc import process_timelines, read_timelines

    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    write_stats(tmp)
    g = torch.Generator().manual_seed(3)

    # (a) denoiser forward
    diffusion = build(tmp, 100)
    x = torch.randn(2, 14, 205, generator=g)
    lengths = torch.tensor([14, 9])
    mask = torch.arange(14)[None] < lengths[:, None]
    t = torch.tensor([37, 80])
    text = torch.randn(2, 384, generator=g)
    y = {"mask": mask, "length": lengths, "tx": diffusion.prepare_tx_emb(tx(text))}
    out = diffusion.denoiser(x, y, t)
    config = {"denoiser": CONFIG, "timesteps": 100, "prediction": "x", "schedule": "cosine s=0.008"}
    save("denoiser", config, diffusion, {"x": x, "lengths": lengths, "t": t, "text": text},
         {"output": out})  # fmt: skip

    # (b) one reverse step with CFG and variance-scaled posterior noise
    uncond = torch.randn(1, 384, generator=g).expand(2, -1).clone()
    y = {"mask": mask, "length": lengths, "tx": diffusion.prepare_tx_emb(tx(text)),
         "tx_uncond": diffusion.prepare_tx_emb(tx(uncond)), "infos": {"guidance_weight": GUIDANCE}}  # fmt: skip
    with seeded_noise(torch.Generator().manual_seed(SEED)):
        x_prev, x0 = diffusion.p_sample(x, y, torch.full((2,), 37))
    save("reverse_step", {**config, "guidance_scale": GUIDANCE, "seed": SEED}, diffusion,
         {"x": x, "lengths": lengths, "t": 37, "text": text, "uncond_text": uncond},
         {"x_prev": x_prev, "x0": x0})  # fmt: skip

    # (c) STMC collage, 2 steps
    diffusion = build(tmp, 2)
    path = tmp / "timeline.txt"
    path.write_text(TIMELINE)
    infos = process_timelines(read_timelines(str(path), FPS), int(FPS * OVERLAP_S))
    infos["featsname"], infos["guidance_weight"] = "smplrifke", GUIDANCE
    table = {s: torch.randn(384, generator=g) for s in sorted(set(infos["all_texts"]) | {""})}
    emb = torch.stack([table[s] for s in infos["all_texts"]])
    null = torch.stack([table[""] for _ in infos["all_texts"]])
    with seeded_noise(torch.Generator().manual_seed(SEED)):
        motion = diffusion.stmc_forward(tx(emb), tx(null), infos, progress_bar=None)
    save("collage", {**config, "timesteps": 2, "guidance_scale": GUIDANCE, "seed": SEED,
                     "fps": FPS, "overlap_s": OVERLAP_S, "crop_lengths": list(infos["all_lengths"])},
         diffusion, {"timeline": TIMELINE, "text_table": table},
         {"motion": motion, "n_frames": int(infos["n_frames"])})  # fmt: skip


if __name__ == "__main__":
    main()
