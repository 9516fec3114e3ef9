"""Parity fixtures for ``stdiff`` from the official STDiff code (not run in CI).

Upstream: XiYe20/STDiffProject at be16cc7 (``stdiff/models``) with its diffusers fork
XiYe20/CustomDiffusers at 76a902b (diffusers 0.15.0.dev0 with ``UNet2DMotionCond``).

Regenerate (the workspace python provides torch, torchsde; old libraries go in a scratch folder):

    mkdir -p /tmp/stdiff-up && cd /tmp/stdiff-up
    git clone https://github.com/XiYe20/STDiffProject && git -C STDiffProject checkout be16cc7
    git clone https://github.com/XiYe20/CustomDiffusers && git -C CustomDiffusers checkout 76a902b
    uv pip install --target /tmp/stdiff-up/deps --no-deps huggingface_hub==0.13.4 \
        omegaconf==2.3.0 antlr4-python3-runtime==4.9.3 torchdiffeq==0.2.3 einops
    cd /work/main && OMP_NUM_THREADS=1 uv run --frozen --all-packages python \
        tools/upstream/stdiff.py --stdiff /tmp/stdiff-up/STDiffProject/stdiff \
        --diffusers /tmp/stdiff-up/CustomDiffusers/src --deps /tmp/stdiff-up/deps

Writes ``tests/fixtures/upstream/stdiff/{context,future,unet,forward,super_res}.pt`` (each
``{"upstream_commit", "config", "state_dict", "inputs", "outputs"}``) and ``pretrained/``, the
folder ``STDiffPipeline(stdiff, scheduler).save_pretrained`` writes, for the importer test.

Determinism: upstream integrates the motion SDE with ``torchsde.sdeint_adjoint`` and a Brownian
path it draws itself. Here its ``sdeint`` is wrapped to pass a ``BrownianInterval`` seeded with
the fixture's ``entropy`` over the same interval; the test gives our model the same entropy. The
zero-initialised last convs of the SDE nets (f = g = 0 at init) and all other weights get a
random perturbation so every term of the computation shows up in the outputs.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from pathlib import Path

import torch
import torchsde

UPSTREAM_COMMIT = "XiYe20/STDiffProject@be16cc7 + XiYe20/CustomDiffusers@76a902b"
ENTROPY = 1234
OUT = Path(__file__).resolve().parents[2] / "tests/fixtures/upstream/stdiff"

TDE_CFG = {
    "autoregressive": True,
    "super_res_training": False,
    "MotionEncoder": {
        "learn_diff_image": True,
        "image_size": 16,
        "in_channels": 3,
        "model_channels": 2,
        "n_downs": 2,
    },
    "DiffUnet": {"n_layers": 1, "nonlinear": "tanh"},
    "Int": {
        "sde": True,
        "method": "euler_heun",
        "sde_options": {
            "noise_type": "diagonal",
            "sde_type": "stratonovich",
            "dt": 0.1,
            "rtol": 1e-3,
            "atol": 1e-3,
            "adaptive": False,
        },
        "ode_options": {"step_size": 0.1, "norm": None},
    },
}
UNET_CFG = {
    "sample_size": 16,
    "in_channels": 6,
    "out_channels": 3,
    "m_channels": 8,
    "layers_per_block": 1,
    "block_out_channels": [8, 16],
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
    "attention_head_dim": [None, 8],
    "norm_num_groups": 4,
}


def import_upstream(stdiff_dir: str, diffusers_src: str, deps: str):
    """Import the fork's diffusers 0.15 and upstream's ``models`` package.

    diffusers 0.15 probes optional libraries at import; the workspace's new transformers and
    accelerate do not work with it, so they are hidden while it imports.
    """
    for p in (stdiff_dir, diffusers_src, deps):
        sys.path.insert(0, p)
    real = importlib.util.find_spec
    hidden = ("transformers", "accelerate", "flax", "onnxruntime", "k_diffusion", "xformers")

    def find_spec(name, *a, **k):
        return None if name.split(".")[0] in hidden else real(name, *a, **k)

    importlib.util.find_spec = find_spec
    try:
        import diffusers
    finally:
        importlib.util.find_spec = real
    assert diffusers.__version__ == "0.15.0.dev0", diffusers.__file__
    import models.diff_unet as diff_unet
    from models import STDiffDiffusers, STDiffPipeline

    def sdeint_fixed_path(sde, y0, ts, **kw):
        bm = torchsde.BrownianInterval(
            t0=float(ts[0]),
            t1=float(ts[-1]),
            size=y0.shape,
            dtype=y0.dtype,
            device=y0.device,
            entropy=ENTROPY,
            levy_area_approximation="none",
        )
        return torchsde.sdeint_adjoint(sde, y0, ts, bm=bm, **kw)

    diff_unet.sdeint = sdeint_fixed_path
    return diffusers, STDiffDiffusers, STDiffPipeline


def build(STDiffDiffusers, tde_cfg=None, unet_cfg=None):
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    model = STDiffDiffusers(
        OmegaConf.create(unet_cfg or UNET_CFG), OmegaConf.create(tde_cfg or TDE_CFG)
    ).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def save(name: str, config: dict, model, inputs: dict, outputs: dict) -> None:
    payload = {
        "upstream_commit": UPSTREAM_COMMIT,
        "config": config,
        "state_dict": state(model),
        "inputs": inputs,
        "outputs": outputs,
    }
    path = OUT / f"{name}.pt"
    torch.save(payload, path)
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stdiff", required=True, help="STDiffProject/stdiff folder")
    ap.add_argument("--diffusers", required=True, help="CustomDiffusers/src folder")
    ap.add_argument("--deps", required=True, help="folder of the old pinned libraries")
    args = ap.parse_args()
    diffusers, STDiffDiffusers, STDiffPipeline = import_upstream(
        args.stdiff, args.diffusers, args.deps
    )
    OUT.mkdir(parents=True, exist_ok=True)
    config = {"unet_cfg": UNET_CFG, "tde_cfg": TDE_CFG}
    model = build(STDiffDiffusers)
    g = torch.Generator().manual_seed(1)
    n, to, tp, c, hw = 2, 4, 3, 3, 16
    vo = torch.rand(n, to, c, hw, hw, generator=g) * 2 - 1
    idx_o = torch.arange(to, dtype=torch.float32)
    idx_p = torch.tensor([4.0, 5.5, 7.0])
    clean_vp = torch.rand(n, tp, c, hw, hw, generator=g) * 2 - 1
    noisy_vp = torch.randn(n * tp, c, hw, hw, generator=g)
    timestep = torch.randint(0, 1000, (n * tp,), generator=g)

    with torch.no_grad():
        m_context = model.tde_model.context_encode(vo, idx_o)
        save("context", config, model, {"vo": vo, "idx_o": idx_o}, {"m_context": m_context})

        m_future = model.tde_model.future_predict(m_context, torch.cat([idx_o[-1:], idx_p]))
        save(
            "future",
            config,
            model,
            {"m_context": m_context, "ts": torch.cat([idx_o[-1:], idx_p]), "entropy": ENTROPY},
            {"m_future": m_future},
        )

        sample = torch.randn(n * tp, 2 * c, hw, hw, generator=g)
        m_feat = torch.randn(n * tp, 8, 4, 4, generator=g)
        eps = model.diffusion_unet(sample, timestep, m_feat=m_feat).sample
        save(
            "unet",
            config,
            model,
            {"sample": sample, "timestep": timestep, "m_feat": m_feat},
            {"eps": eps},
        )

        inputs = {
            "Vo": vo,
            "idx_o": idx_o,
            "idx_p": idx_p,
            "noisy_Vp": noisy_vp,
            "timestep": timestep,
            "clean_Vp": clean_vp,
            "Vo_last_frame": vo[:, -1:],
            "entropy": ENTROPY,
        }
        out = model(**{k: v for k, v in inputs.items() if k != "entropy"})
        save("forward", config, model, inputs, {"eps": out.sample})

        # super-resolution branch: motion from 8 x 8 observations, UNet at 16 x 16
        sr_tde = {
            **TDE_CFG,
            "super_res_training": True,
            "MotionEncoder": {**TDE_CFG["MotionEncoder"], "image_size": 8, "n_downs": 1},
        }
        sr_unet = {**UNET_CFG, "m_channels": 4}
        sr = build(STDiffDiffusers, sr_tde, sr_unet)
        vo_small = torch.nn.functional.interpolate(
            vo.flatten(0, 1), size=(8, 8), mode="bicubic", antialias=True
        ).unflatten(0, (n, to))
        sr_inputs = {**inputs, "Vo": vo_small, "Vo_last_frame": vo_small[:, -1:]}
        out = sr(**{k: v for k, v in sr_inputs.items() if k != "entropy"})
        save(
            "super_res",
            {"unet_cfg": sr_unet, "tde_cfg": sr_tde},
            sr,
            sr_inputs,
            {"eps": out.sample},
        )

        scheduler = diffusers.DDPMScheduler(
            num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon"
        )
        pretrained = OUT / "pretrained"
        shutil.rmtree(pretrained, ignore_errors=True)
        STDiffPipeline(model, scheduler).save_pretrained(pretrained)
        print(sorted(str(p.relative_to(pretrained)) for p in pretrained.rglob("*")))


if __name__ == "__main__":
    main()
