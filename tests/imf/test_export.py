"""imf-export: the decoder path as ONNX, checked against torch with onnxruntime."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def test_exported_decoder_matches_torch(tiny_checkpoint, tmp_path, capsys):
    import onnxruntime

    from imf import export

    module, ckpt = tiny_checkpoint
    out = tmp_path / "decoder.onnx"
    assert export.main(["--ckpt", str(ckpt), "-o", str(out), "--batch", "2"]) == 0
    assert "decoder: onnxruntime vs torch" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == ["tokens", "features_0", "features_1", "motion_0", "motion_1"]

    # Independent check on new inputs: a real reference frame and the decoder of the module.
    generator = module.generator.eval()
    _, code, tokens = export._example(generator, batch=2, seed=3)
    with torch.no_grad():
        expected = generator.decode(code, tokens).numpy()
    feeds = {"tokens": tokens.numpy()}
    feeds.update({n: t.numpy() for n, t in zip(names[1:], (*code.features, *code.motion))})
    (frame,) = session.run(None, feeds)
    assert frame.shape == (2, 3, 32, 32)
    assert float(abs(frame - expected).max()) <= 1e-4
    with pytest.raises(SystemExit, match="must be an .onnx file"):
        export.main(["--ckpt", str(ckpt), "-o", str(tmp_path / "decoder.pt")])
