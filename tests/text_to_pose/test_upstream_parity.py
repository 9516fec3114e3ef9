"""Our importer + model reproduce upstream transcription's text_to_pose model (fixture written by
tools/upstream/text_to_pose.py from the upstream code at a tiny size)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from text_to_pose.importer import UPSTREAM_COMMIT, convert_state_dict, main
from text_to_pose.model.schedule import blend_betas
from text_to_pose.model.text_to_pose import refine_from_first_pose
from text_to_pose.module import TextToPoseModule

FIXTURE = Path(__file__).parents[1] / "fixtures/upstream/text-to-pose/tiny.pt"
TOL = dict(atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def fixture() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def _imported(fixture: dict, state: dict | None = None) -> TextToPoseModule:
    converted, kwargs, _ = convert_state_dict(state or fixture["state_dict"],
                                              heads=fixture["config"]["heads"])  # fmt: skip
    module = TextToPoseModule(**kwargs)
    module.load_state_dict(converted, strict=True)
    return module.eval()


def _outputs(module: TextToPoseModule, fixture: dict) -> dict[str, torch.Tensor]:
    inputs, model = fixture["inputs"], module.model
    ids, valid = module.tokenizer.batch(inputs["texts"])
    cond = model.encode(ids, valid)
    out = {"text_encoding": cond["text"] * valid[..., None]}
    mus, log_vars = [], []
    for i in range(len(inputs["texts"])):
        width = int(valid[i].sum())
        single = model.encode(ids[i : i + 1, :width], valid[i : i + 1, :width])
        mu, log_var = model.length_distribution(single)
        mus.append(mu[0])
        log_vars.append(log_var[0])
    out["length_mu"], out["length_log_var"] = torch.stack(mus), torch.stack(log_vars)
    x_t = inputs["x_t"]
    cond["frame_valid"] = torch.ones(x_t.shape[:2], dtype=torch.bool)
    with torch.no_grad():
        out["refined"] = model(x_t, inputs["step"], cond)
        out["corrected_first_pose"] = model.correction.fill(inputs["first_pose"][None])[0]
    for i, (key, guidance) in enumerate((("refinement_guided", inputs["guidance"]),
                                         ("refinement_plain", 1.0))):  # fmt: skip
        width = int(valid[i].sum())
        poses, _ = refine_from_first_pose(
            model, inputs["first_pose"][None], ids[i : i + 1, :width], valid[i : i + 1, :width],
            lengths=torch.tensor([inputs["forced_lengths"][i]]), guidance=guidance,
        )  # fmt: skip
        out[key] = poses[0]
    return out


def test_fixture_is_from_the_pinned_upstream_commit(fixture):
    assert fixture["upstream_commit"] == UPSTREAM_COMMIT
    assert FIXTURE.stat().st_size < 2_000_000


def test_tokenizer_ids_and_blend_schedule_match_upstream(fixture, tokenizer):
    ids, valid = tokenizer.batch(fixture["inputs"]["texts"])
    assert torch.equal(valid, fixture["inputs"]["text_valid"])
    assert torch.equal(ids[valid], fixture["inputs"]["token_ids"][valid])
    torch.testing.assert_close(blend_betas(10), fixture["outputs"]["betas"], **TOL)


def test_imported_model_reproduces_every_upstream_output(fixture):
    ours = _outputs(_imported(fixture), fixture)
    expected = fixture["outputs"]
    for key, value in ours.items():
        target = expected[key][-1] if key.startswith("refinement") else expected[key]
        torch.testing.assert_close(value, target, **TOL, msg=key)


@pytest.mark.parametrize(
    "key", ["pose_correction.2.bias", "seq_length.fc_mu.bias", "text_encoder.embedding.weight",
            "pose_encoder.pose_encoder.layers.1.linear1.bias", "step_embedding.weight"],
)  # fmt: skip
def test_a_perturbed_weight_breaks_parity(fixture, key):
    state = dict(fixture["state_dict"])
    state[key] = state[key] + 0.05
    ours = _outputs(_imported(fixture, state), fixture)
    errors = {k: (v - (fixture["outputs"][k][-1] if k.startswith("refinement")
                       else fixture["outputs"][k])).abs().max() for k, v in ours.items()}  # fmt: skip
    assert max(errors.values()) > 1e-3, errors


def test_importer_writes_a_loadable_checkpoint_and_lists_unmapped_keys(fixture, tmp_path, capsys):
    src = tmp_path / "upstream.ckpt"
    torch.save({"state_dict": fixture["state_dict"], "epoch": 3}, src)
    main([str(src), "-o", str(tmp_path / "imported.ckpt"), "--heads", "2"])
    printed = capsys.readouterr().out
    assert "text_encoder.dummy_param" in printed and "model.residual=false" in printed
    ckpt = torch.load(tmp_path / "imported.ckpt", weights_only=True)
    assert ckpt["imported_from"]["unmapped_keys"][-1] == "text_encoder.dummy_param"
    assert all(k.startswith("pose_encoder.encoder_layer.") or k == "text_encoder.dummy_param"
               for k in ckpt["imported_from"]["unmapped_keys"])  # fmt: skip
    assert "model.num_steps=10" in ckpt["hydra_overrides"]
    module = TextToPoseModule(**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"], strict=True)


def test_importer_refuses_other_models_by_name(fixture, tmp_path):
    ham2pose = {"step_encoder.0.weight": torch.zeros(4, 4), "seq_length.weight": torch.zeros(1, 4)}
    with pytest.raises(ValueError, match="Ham2Pose"):
        convert_state_dict(ham2pose)
    ours = TextToPoseModule(hidden=16, heads=2, ff=16, text_layers=1, pose_layers=1).state_dict()
    with pytest.raises(ValueError, match="already a text-to-pose checkpoint"):
        convert_state_dict(ours)
    with pytest.raises(ValueError, match="not an upstream text_to_pose"):
        convert_state_dict({"encoder.weight": torch.zeros(2)})
    openpose = dict(fixture["state_dict"])
    openpose["pose_encoder.pose_projection.weight"] = torch.zeros(32, 274)
    with pytest.raises(ValueError, match="274"):
        convert_state_dict(openpose, heads=2)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.ckpt"), "-o", str(tmp_path / "x.ckpt")])
