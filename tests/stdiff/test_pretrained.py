"""Upstream's save_pretrained layout: import, export, save/load round trips, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stdiff import importer, pretrained
from stdiff.model.stdiff import STDiffModel

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures/upstream/stdiff"
UPSTREAM_DIR = FIXTURES / "pretrained"


def _upstream_bin() -> dict:
    return torch.load(UPSTREAM_DIR / "stdiff/diffusion_pytorch_model.bin", weights_only=True)


def _forward_fixture_error(model, upstream_forward) -> float:
    fix = torch.load(FIXTURES / "forward.pt", weights_only=True)
    with torch.no_grad():
        return float((upstream_forward(fix, model) - fix["outputs"]["eps"]).abs().max())


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("imp") / "imported.ckpt"
    assert importer.main([str(UPSTREAM_DIR), "-o", str(out)]) == 0
    return out, torch.load(out, weights_only=True)


def test_import_rebuilds_upstream_model_from_its_overrides(imported, upstream_forward):
    import hydra

    _, ckpt = imported
    assert ckpt["imported_from"]["unmapped_keys"] == []
    assert ckpt["imported_from"]["upstream"].startswith("XiYe20/STDiffProject@be16cc7")
    assert "data.channels=3" in ckpt["hydra_overrides"]
    assert ckpt["hyper_parameters"]["STDiff"]["DiffNet"]["gru_update"] == "upstream"
    cfg = importer.compose_train_config(ckpt["hydra_overrides"])
    module = hydra.utils.instantiate(cfg.model)
    module.load_state_dict(ckpt["state_dict"])  # strict
    assert _forward_fixture_error(module.model.eval(), upstream_forward) <= 1e-5


def test_export_writes_upstreams_files_back(imported, tmp_path, upstream_forward):
    path, _ = imported
    assert importer.export_main([str(path), "-o", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "model_index.json").read_text())["stdiff"][1] == "STDiffDiffusers"
    ours = torch.load(tmp_path / "stdiff/diffusion_pytorch_model.bin", weights_only=True)
    theirs = _upstream_bin()
    assert sorted(ours) == sorted(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    cfg = json.loads((tmp_path / "stdiff/config.json").read_text())
    up = json.loads((UPSTREAM_DIR / "stdiff/config.json").read_text())
    assert cfg["_class_name"] == up["_class_name"]
    for key, value in up["unet_cfg"].items():
        assert cfg["unet_cfg"][key] == value
    assert cfg["tde_cfg"]["Int"]["sde_options"] == up["tde_cfg"]["Int"]["sde_options"]
    assert cfg["tde_cfg"]["MotionEncoder"] == up["tde_cfg"]["MotionEncoder"]
    sched = json.loads((tmp_path / "scheduler/scheduler_config.json").read_text())
    up_sched = json.loads((UPSTREAM_DIR / "scheduler/scheduler_config.json").read_text())
    for key in (
        "num_train_timesteps",
        "beta_start",
        "beta_end",
        "beta_schedule",
        "prediction_type",
    ):
        assert sched[key] == up_sched[key]
    # and it reads back as the same model
    model = STDiffModel.from_pretrained(tmp_path).eval()
    assert _forward_fixture_error(model, upstream_forward) <= 1e-5


def test_save_load_round_trip_of_our_model(tiny_cfg, tmp_path):
    torch.manual_seed(0)
    model = STDiffModel(tiny_cfg).eval()
    model.save_pretrained(tmp_path, {"num_train_timesteps": 500, "beta_schedule": "linear"})
    assert {p.name for p in tmp_path.iterdir()} == {"model_index.json", "stdiff", "scheduler"}
    back = STDiffModel.from_pretrained(tmp_path).eval()
    assert back.config == model.config  # gru_update=standard survives in tde_cfg
    assert back.tde.gru.update == "standard"
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in model.state_dict().items())
    _, _, _, noise = pretrained.load_pretrained(tmp_path)
    assert noise["num_train_timesteps"] == 500


def test_weight_names_follow_upstream_exactly():
    """Keys and shapes our save_pretrained writes are those upstream's state_dict has."""
    cfg = json.loads((UPSTREAM_DIR / "stdiff/config.json").read_text())
    model = STDiffModel(pretrained.config_from_upstream(cfg))
    ours = pretrained.state_to_upstream(model.state_dict())
    theirs = _upstream_bin()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {
        k: tuple(v.shape) for k, v in theirs.items()
    }


def test_export_refuses_models_upstream_would_run_differently(make_module, tmp_path, capsys):
    module = make_module()  # gru_update: standard
    ckpt = tmp_path / "ours.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, ckpt)
    with pytest.raises(SystemExit) as e:
        importer.export_main([str(ckpt), "-o", str(tmp_path / "out")])
    assert e.value.code == 2
    assert "gru_update=upstream" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_import_refuses_other_models_by_name(tmp_path, capsys):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet/config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(SystemExit):
        importer.main([str(tmp_path / "unet"), "-o", str(tmp_path / "x.ckpt")])
    err = capsys.readouterr().err
    assert "UNet2DModel" in err and "not an STDiff model" in err
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net": {}}}, other)
    with pytest.raises(SystemExit):
        importer.export_main([str(other), "-o", str(tmp_path / "o")])
    assert "not an STDiff checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        importer.main([str(other), "-o", str(tmp_path / "y.ckpt")])
    assert "takes the folder" in capsys.readouterr().err
    assert not (tmp_path / "x.ckpt").exists() and not (tmp_path / "y.ckpt").exists()


def test_checkpoint_of_other_channel_count_is_refused_by_name(make_module, tiny_cfg):
    from stdiff.module import STDiffModule

    grey = make_module()
    for key in ("in_channels", "out_channels"):
        del tiny_cfg["Diffusion"]["unet_config"][key]
    del tiny_cfg["DiffNet"]["MotionEncoder"]["in_channels"]
    hp = grey.hparams
    rgb = STDiffModule(tiny_cfg, dict(hp.noise), dict(hp.optim), dict(hp.eval), channels=3)
    with pytest.raises(ValueError, match="trained on 1-channel frames.*set data.channels=1"):
        rgb.load_state_dict(grey.state_dict())
