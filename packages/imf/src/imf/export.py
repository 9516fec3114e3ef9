"""``imf-export --ckpt last.ckpt -o decoder.onnx``: the decoder path of IMF as an ONNX graph.

The graph is what a receiver runs per frame: ``(tokens, f_r^1..f_r^L, m_r^1..m_r^L) -> frame``,
i.e. ``D_F(IMF_A(IMF_D(t_c), m_r, f_r))`` with ``m_r = IMF_D(t_r)`` and ``f_r = E_F(x_r)`` cached
from the reference frame. Inputs are named ``tokens`` ``[B, d_m]``, ``features_<l>`` and
``motion_<l>`` ``[1, C, H, W]`` (fine to coarse); the output ``frame`` is ``[B, 3, S, S]`` in
[-1, 1]. ``B`` is fixed at export (``--batch``): the modulated convolutions are grouped per
example. ``--reference-output`` also writes the reference encoder (``frame -> features_*,
motion_*``). After writing, the graph is run with onnxruntime on a test input and compared with
torch; the command fails when the largest difference exceeds ``--tolerance`` (1e-4).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from imf.checkpoint import load_checkpoint
from imf.model.generator import IMFGenerator, ReferenceCode


class DecoderGraph(nn.Module):
    """``(tokens, *features, *motion) -> frame`` around :meth:`IMFGenerator.decode`."""

    def __init__(self, generator: IMFGenerator):
        super().__init__()
        self.generator = generator
        self.levels = len(generator.alignment)

    def forward(self, tokens: Tensor, *reference: Tensor) -> Tensor:
        batch = tokens.shape[0]
        features, motion = reference[: self.levels], reference[self.levels :]
        code = ReferenceCode(
            [f.expand(batch, -1, -1, -1) for f in features],
            [m.expand(batch, -1, -1, -1) for m in motion],
            tokens,
        )
        return self.generator.decode(code, tokens)


class ReferenceGraph(nn.Module):
    """``frame -> (*features, *motion)``: what the decoder caches from the reference frame."""

    def __init__(self, generator: IMFGenerator):
        super().__init__()
        self.generator = generator

    def forward(self, frame: Tensor) -> tuple[Tensor, ...]:
        code = self.generator.encode_reference(frame)
        return (*code.features, *code.motion)


def _names(levels: int) -> tuple[list[str], list[str]]:
    return [f"features_{i}" for i in range(levels)], [f"motion_{i}" for i in range(levels)]


def _example(generator: IMFGenerator, batch: int, seed: int = 0) -> tuple[Tensor, ReferenceCode]:
    g = torch.Generator().manual_seed(seed)
    size = generator.image_size
    frame = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    with torch.no_grad():
        code = generator.encode_reference(frame)
        tokens = generator.encode_tokens(torch.rand(batch, 3, size, size, generator=g) * 2 - 1)
    return frame, code, tokens


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str]):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=inputs,
        output_names=outputs,
        dynamo=True,
        external_data=False,
    )


def max_difference(path: Path, feeds: dict[str, np.ndarray], expected: list[np.ndarray]) -> float:
    """Run ``path`` with onnxruntime on ``feeds`` and return the largest |onnx - torch|."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    return max(float(np.abs(a - b).max()) for a, b in zip(got, expected))


@torch.no_grad()
def export_decoder(
    generator: IMFGenerator,
    out: str | Path,
    batch: int = 1,
    reference_out: str | Path | None = None,
) -> dict[str, float]:
    """Write the decoder (and optionally the reference encoder) graph; return the max
    onnxruntime-vs-torch difference of each."""
    generator = generator.eval().float().cpu()
    levels = len(generator.alignment)
    feature_names, motion_names = _names(levels)
    frame, code, tokens = _example(generator, batch)
    reference = (*code.features, *code.motion)
    decoder = DecoderGraph(generator).eval()
    out = Path(out)
    _export(
        decoder, (tokens, *reference), out, ["tokens", *feature_names, *motion_names], ["frame"]
    )
    feeds = {"tokens": tokens.cpu().numpy()}
    feeds.update({n: t.cpu().numpy() for n, t in zip(feature_names + motion_names, reference)})
    report = {"decoder": max_difference(out, feeds, [decoder(tokens, *reference).cpu().numpy()])}
    if reference_out is not None:
        encoder = ReferenceGraph(generator).eval()
        reference_out = Path(reference_out)
        _export(encoder, (frame,), reference_out, ["frame"], feature_names + motion_names)
        report["reference"] = max_difference(
            reference_out, {"frame": frame.cpu().numpy()}, [t.cpu().numpy() for t in reference]
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imf-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="IMF checkpoint (.ckpt)")
    parser.add_argument("-o", "--output", required=True, help="decoder graph to write (.onnx)")
    parser.add_argument("--batch", type=int, default=1, help="frames per decoder call (default 1)")
    parser.add_argument("--reference-output", default=None, help="also write the reference encoder")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)
    if args.batch < 1:
        sys.exit(f"error: --batch must be >= 1, got {args.batch}")
    if not str(args.output).endswith(".onnx"):
        sys.exit(f"error: -o {args.output}: the output must be an .onnx file")
    module = load_checkpoint(args.ckpt)
    report = export_decoder(module.generator, args.output, args.batch, args.reference_output)
    for name, diff in report.items():
        print(f"{name}: onnxruntime vs torch max |diff| = {diff:.2e}")
    worst = max(report.values())
    if not worst <= args.tolerance:
        sys.exit(f"error: exported graph differs from torch by {worst:.2e} > {args.tolerance}")
    print(
        f"wrote {args.output}" + (f" and {args.reference_output}" if args.reference_output else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
