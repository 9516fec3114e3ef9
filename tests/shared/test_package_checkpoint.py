"""The package checkpoint every upstream importer writes (motioncore.train.checkpoint_io)."""

import torch

from motioncore.train.checkpoint_io import package_checkpoint, save_checkpoint
from motioncore.train.loading import RUN_INFO_KEY, check_run_info, read_checkpoint


def _ckpt(**kw):
    return package_checkpoint(
        state_dict={"net.weight": torch.arange(6.0).reshape(2, 3)},
        hyper_parameters={"width": 8},
        hydra_overrides=["model.width=8"],
        imported_from={"source": "up.pth", "unmapped_keys": ["extra"]},
        **kw,
    )


def test_written_checkpoint_reads_back_weights_only(tmp_path):
    out = tmp_path / "sub" / "imported.ckpt"
    save_checkpoint(_ckpt(), out)
    back = read_checkpoint(out)
    assert torch.equal(back["state_dict"]["net.weight"], torch.arange(6.0).reshape(2, 3))
    assert back["hyper_parameters"] == {"width": 8}
    assert back["hydra_overrides"] == ["model.width=8"]
    assert back["imported_from"] == {"source": "up.pth", "unmapped_keys": ["extra"]}
    assert isinstance(back["pytorch-lightning_version"], str)
    assert RUN_INFO_KEY not in back
    assert sorted(p.name for p in out.parent.iterdir()) == ["imported.ckpt"]


def test_run_info_lets_another_package_refuse_it(tmp_path):
    out = tmp_path / "imported.ckpt"
    save_checkpoint(_ckpt(run_info={"package": "imf", "model": "imf.module.IMFModule"}), out)
    back = read_checkpoint(out)
    check_run_info(back, out, "ckpt_path", "imf", "imf.module.IMFModule")
    try:
        check_run_info(back, out, "ckpt_path", "stdiff", "stdiff.module.STDiffModule")
    except ValueError as e:
        assert "MODEL=imf" in str(e)
    else:
        raise AssertionError("a checkpoint of another package was accepted")
