"""Parity with STMC's own code (fixtures from tools/upstream/stmc_keyframe.py at nv-tlabs/stmc
a8b2a1f): the imported denoiser, one reverse step with the variance-scaled posterior noise, and
the timeline collage, each to 1e-5; a perturbed weight breaks each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from motioncore.diffusion import guided_output
from motioncore.masking import length_mask
from stmc_keyframe.importer import convert, main
from stmc_keyframe.timeline import make_timeline_scheduler, parse_timeline, sample_timeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstream" / "stmc-keyframe"
TOL = 1e-5


def fixture(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


def stmc_run_dir(root: Path, fx: dict, with_stats_in_ckpt: bool = True) -> Path:
    """STMC's released layout: config.json, logs/checkpoints/last.ckpt, {motion,text}_stats/."""
    run = root / "mdm-smpl_clip_smplrifke_humanml3d"
    (run / "logs" / "checkpoints").mkdir(parents=True)
    state = dict(fx["state_dict"])
    for prefix, folder in (
        ("motion_normalizer", "motion_stats"),
        ("text_normalizer", "text_stats"),
    ):
        (run / folder).mkdir()
        for stat in ("mean", "std"):
            torch.save(state[f"{prefix}.{stat}"], run / folder / f"{stat}.pt")
            if not with_stats_in_ckpt:
                del state[f"{prefix}.{stat}"]
    state["tmr.some_weight"] = torch.zeros(2)  # an extra upstream key that has no counterpart
    cfg = fx["config"]
    config = {"motion_features": "smplrifke",
              "data": {"text_encoder": {"modelname": "minilm-fixture"}},
              "diffusion": {"denoiser": cfg["denoiser"], "timesteps": cfg["timesteps"],
                            "prediction": "x",
                            "schedule": {"_target_": "src.model.schedule.cosine.CosineBetaSchedule"}}}  # fmt: skip
    (run / "config.json").write_text(json.dumps(config))
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.0.9", "epoch": 3},
               run / "logs" / "checkpoints" / "last.ckpt")  # fmt: skip
    return run


def imported_module(tmp_path: Path, name: str, **kw):
    from stmc_keyframe.module import StmcKeyframeModule

    fx = fixture(name)
    out = convert(stmc_run_dir(tmp_path, fx), text_encoder="minilm", **kw)
    module = StmcKeyframeModule(out["hyper_parameters"]["diffusion"], {"name": "minilm"})
    module.load_state_dict(out["state_dict"])
    return module.eval(), fx, out


def perturb(module) -> None:
    with torch.no_grad():
        module.denoiser.encoder.layers[0].norm2.bias.add_(1e-2)


def test_denoiser_forward_matches_upstream_and_keyframe_inputs_start_at_zero(tmp_path):
    module, fx, out = imported_module(tmp_path, "denoiser")
    inp = fx["inputs"]
    valid = length_mask(inp["lengths"], inp["x"].shape[1])
    obs = torch.zeros_like(inp["x"], dtype=torch.bool)
    cond = {"text": module.normalize_text(inp["text"]), "valid": valid, "obs_mask": obs}

    def run():
        with torch.no_grad():
            return module.denoiser(inp["x"], inp["t"], cond)[valid]

    ref = fx["outputs"]["output"][valid]
    assert (run() - ref).abs().max() <= TOL
    assert out["imported_from"]["unmapped_keys"] == ["tmr.some_weight"]
    assert module.denoiser.keyframe_conditioned and not module.denoiser.keyframe_embedding.any()
    # without the text z-scoring (STMC's text_stats) the output is not STMC's
    plain = {**cond, "text": inp["text"]}
    with torch.no_grad():
        assert (module.denoiser(inp["x"], inp["t"], plain)[valid] - ref).abs().max() > 1e-3
    perturb(module)
    assert (run() - ref).abs().max() > 1e-3


def test_reverse_step_matches_upstream_variance_scaled_noise(tmp_path):
    module, fx, _ = imported_module(tmp_path, "reverse_step", keyframe_conditioned=False)
    inp, cfg = fx["inputs"], fx["config"]
    x, t = inp["x"], inp["t"]
    valid = length_mask(inp["lengths"], x.shape[1])
    cond = {"text": module.normalize_text(inp["text"]), "valid": valid,
            "obs_mask": torch.zeros_like(x, dtype=torch.bool)}  # fmt: skip
    uncond = {**cond, "text": module.normalize_text(inp["uncond_text"])}

    def step(mode: str):
        with torch.no_grad():
            tt = torch.full((len(x),), t)
            pred = guided_output(module.denoiser, x, tt, cond, uncond, cfg["guidance_scale"])
            x0 = module.schedule.predict_x0(pred, x, tt)
            sched = make_timeline_scheduler(module.schedule, "ddpm", mode)
            sched.set_timesteps(cfg["timesteps"])
            g = torch.Generator().manual_seed(cfg["seed"])
            return x0, sched.step(pred, t, x, generator=g).prev_sample

    x0, prev = step("upstream")
    assert (x0 - fx["outputs"]["x0"])[valid].abs().max() <= TOL
    assert (prev - fx["outputs"]["x_prev"])[valid].abs().max() <= TOL
    _, textbook = step("std")  # sqrt(variance) noise is not what STMC samples
    assert (textbook - fx["outputs"]["x_prev"])[valid].abs().max() > 1e-2
    perturb(module)
    assert (step("upstream")[1] - fx["outputs"]["x_prev"])[valid].abs().max() > 1e-4


def test_timeline_collage_matches_upstream(tmp_path):
    module, fx, _ = imported_module(tmp_path, "collage")
    cfg, inp = fx["config"], fx["inputs"]
    table = inp["text_table"]
    module.text_encoder = lambda texts: torch.stack([table[s] for s in texts])
    intervals = parse_timeline(inp["timeline"])

    def run():
        g = torch.Generator().manual_seed(cfg["seed"])
        x = sample_timeline(module, intervals, fps=cfg["fps"], overlap_s=cfg["overlap_s"],
                            guidance_scale=cfg["guidance_scale"], posterior_noise="upstream",
                            generator=g)  # fmt: skip
        return module.denormalize(x)

    ref = fx["outputs"]["motion"][0, : fx["outputs"]["n_frames"]]
    ours = run()
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() <= TOL * max(1.0, float(ref.abs().max()))
    perturb(module)
    assert (run() - ref).abs().max() > 1e-3


def test_importer_cli_refuses_other_models_and_needs_stats(tmp_path, capsys):
    fx = fixture("denoiser")
    mdm = tmp_path / "mdm.pt"
    torch.save({"model.input_process.poseEmbedding.weight": torch.zeros(2, 2)}, mdm)
    assert main([str(mdm), "-o", str(tmp_path / "x.ckpt")]) == 2
    assert "MDM" in capsys.readouterr().err
    run = stmc_run_dir(tmp_path / "a", fx, with_stats_in_ckpt=False)
    # stats from the run's files when the checkpoint has none
    out = convert(run / "logs" / "checkpoints" / "last.ckpt", text_encoder="minilm")
    torch.testing.assert_close(
        out["state_dict"]["std"], fx["state_dict"]["motion_normalizer.std"] + 1e-12
    )
    for folder in ("motion_stats", "text_stats"):
        for f in (run / folder).iterdir():
            f.unlink()
    assert main([str(run), "-o", str(tmp_path / "y.ckpt"), "--text-encoder", "minilm"]) == 2
    assert "motion_normalizer statistics" in capsys.readouterr().err
    ok = stmc_run_dir(tmp_path / "b", fx)
    dest = tmp_path / "imported.ckpt"
    assert main([str(ok), "-o", str(dest), "--text-encoder", "minilm"]) == 0
    blob = torch.load(dest, weights_only=True)
    assert "model.text_encoder.name=minilm" in blob["hydra_overrides"]
    assert "diffusion.posterior_noise=upstream" in blob["hydra_overrides"]
    assert blob["imported_from"]["upstream"] == "nv-tlabs/stmc"
    with pytest.raises(ValueError, match="package checkpoint"):
        convert(dest)
