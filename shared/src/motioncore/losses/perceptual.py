"""Perceptual feature loss over a frozen backbone, evaluated on an image pyramid.

Johnson et al. 2016, "Perceptual Losses for Real-Time Style Transfer", eq. 2 (feature
reconstruction loss) in the multi-scale L1 form of FOMM (Siarohin et al. 2019) and IMF:
``L = sum_i sum_j w_j * mean|phi_j(x_hat^i) - phi_j(x^i)|`` over pyramid levels ``i`` and
feature layers ``j`` (reference imf.md, losses table).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

# relu1_1, relu2_1, relu3_1, relu4_1, relu5_1: the layers of FOMM's pyramid VGG19 loss.
VGG19_RELU_X_1 = (1, 6, 11, 20, 29)
# torchvision's VGG19 ("E") feature stack: conv widths, "M" = 2x2 max pool.
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M")
_VGG19_CFG += (512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def cached_torchvision_weights(weights: WeightsEnum) -> Path | None:
    """Where torchvision would cache ``weights`` in the torch hub dir, if the file is there.

    Never downloads: checking the cache first is what keeps offline runs from hanging on a
    download attempt.
    """
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    return path if path.is_file() else None


def _vgg19_features(depth: int) -> nn.Sequential:
    """The first ``depth`` modules of torchvision's ``vgg19().features``, same indices/keys."""
    modules: list[nn.Module] = []
    channels = 3
    for item in _VGG19_CFG:
        if item == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            # Not in-place: a returned activation must not be overwritten by the next layer.
            modules += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU()]
            channels = item
    return nn.Sequential(*modules[:depth])


class VGG19Features(nn.Module):
    """VGG19 feature extractor returning the activations after the given ``features`` indices.

    Args:
        layers: strictly increasing indices into torchvision's ``vgg19().features`` (0..36).
        weights: ``"auto"`` loads torchvision's ImageNet weights from the torch hub cache and
            falls back to random init with a warning when they are not cached; a path loads a
            torchvision VGG19 state dict (full model, ``features.*`` keys, or bare feature keys);
            ``None`` is random init without a warning.
    """

    def __init__(self, layers: Sequence[int] = VGG19_RELU_X_1, weights: str | Path | None = "auto"):
        super().__init__()
        self.layers = tuple(layers)
        increasing = all(a < b for a, b in zip(self.layers, self.layers[1:]))
        if not self.layers or not increasing or self.layers[0] < 0 or self.layers[-1] > 36:
            raise ValueError(f"expected increasing VGG19 indices in 0..36, got {self.layers}")
        self.features = _vgg19_features(self.layers[-1] + 1)
        path = self._weights_path(weights)
        if path is not None:
            self._load(path)

    @staticmethod
    def _weights_path(weights: str | Path | None) -> Path | None:
        if weights is None:
            return None
        if weights != "auto":
            return Path(weights)
        # Imported here: torchvision costs seconds at import time and only "auto" needs it.
        from torchvision.models import VGG19_Weights

        path = cached_torchvision_weights(VGG19_Weights.IMAGENET1K_V1)
        if path is None:
            expected = Path(torch.hub.get_dir()) / "checkpoints"
            warnings.warn(
                "VGG19 ImageNet weights are not in the torch hub cache "
                f"({expected}/vgg19-dcbb9e9d.pth); the perceptual loss uses a RANDOMLY "
                "initialised VGG19. Pass weights=<path to a torchvision vgg19 state dict .pth> "
                "or copy that file into the cache.",
                stacklevel=3,
            )
        return path

    def _load(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if any(key.startswith("features.") for key in state):
            state = {k.removeprefix("features."): v for k, v in state.items()}
        depth = len(self.features)
        state = {k: v for k, v in state.items() if k.split(".")[0].isdigit()}
        state = {k: v for k, v in state.items() if int(k.split(".")[0]) < depth}
        self.features.load_state_dict(state)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self.layers:
                outputs.append(x)
        return outputs


class PerceptualLoss(nn.Module):
    """Multi-scale feature L1 loss over any frozen backbone; returns one value per example.

    Args:
        backbone: module mapping an ImageNet-normalised ``[B, 3, H, W]`` batch to a list of
            feature maps. It is frozen in place (no grads, kept in eval mode).
        layer_weights: one weight per feature map (default: all 1).
        scales: image pyramid; each level is an anti-aliased bilinear resize. The per-level
            losses are summed, as in the FOMM/IMF pyramid loss.
        imagenet_normalize: map inputs from [-1, 1] to ImageNet statistics before the
            backbone; ``False`` passes the [-1, 1] images through.

    Inputs are ``[B, C, H, W]`` in [-1, 1] with C = 1 (repeated to RGB) or 3. Target
    features are computed without grad.
    """

    def __init__(
        self,
        backbone: nn.Module,
        layer_weights: Sequence[float] | None = None,
        scales: Sequence[float] = (1.0, 0.5, 0.25),
        imagenet_normalize: bool = True,
    ):
        super().__init__()
        if not scales or min(scales) <= 0:
            raise ValueError(f"scales must be positive, got {tuple(scales)}")
        self.backbone = backbone.eval().requires_grad_(False)
        self.layer_weights = None if layer_weights is None else tuple(layer_weights)
        self.scales = tuple(scales)
        self.imagenet_normalize = imagenet_normalize
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.backbone.eval()
        return self

    def _prepare(self, images: Tensor) -> Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if self.imagenet_normalize:
            images = ((images + 1) / 2 - self.mean) / self.std
        return images

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape:
            raise ValueError(
                f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}"
            )
        if pred.ndim != 4 or pred.shape[1] not in (1, 3):
            raise ValueError(f"expected [B, 1 or 3, H, W] images, got {tuple(pred.shape)}")
        pred, target = self._prepare(pred), self._prepare(target)
        loss = pred.new_zeros(pred.shape[0])
        for scale in self.scales:
            x, y = pred, target
            if scale != 1:
                x, y = (
                    F.interpolate(t, scale_factor=scale, mode="bilinear", antialias=True)
                    for t in (pred, target)
                )
            pred_features = self.backbone(x)
            with torch.no_grad():
                target_features = self.backbone(y)
            weights = self.layer_weights or (1.0,) * len(pred_features)
            if len(weights) != len(pred_features):
                raise ValueError(
                    f"{len(weights)} layer weights for {len(pred_features)} feature maps"
                )
            for weight, a, b in zip(weights, pred_features, target_features):
                loss = loss + weight * (a - b).abs().reshape(a.shape[0], -1).mean(dim=1)
        return loss


class VGGPerceptualLoss(PerceptualLoss):
    """:class:`PerceptualLoss` over torchvision VGG19 features (see :class:`VGG19Features`).

    Defaults follow FOMM/IMF: relu1_1..relu5_1, unit weights, pyramid (1, 1/2, 1/4). The
    deepest default layer needs at least 16x16 pixels at the coarsest scale.
    """

    def __init__(
        self,
        layers: Sequence[int] = VGG19_RELU_X_1,
        layer_weights: Sequence[float] | None = None,
        scales: Sequence[float] = (1.0, 0.5, 0.25),
        weights: str | Path | None = "auto",
    ):
        if layer_weights is not None and len(layer_weights) != len(layers):
            raise ValueError(f"{len(layer_weights)} layer weights for {len(layers)} layers")
        super().__init__(VGG19Features(layers, weights), layer_weights, scales)
