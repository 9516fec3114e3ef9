"""Tests for motioncore.losses: masked regression, GAN losses, perceptual loss."""

import math
import warnings

import pytest
import torch
import torchvision
from torch import nn

from motioncore.losses import (
    PerceptualLoss,
    VGG19Features,
    VGGPerceptualLoss,
    hinge_d_loss,
    hinge_g_loss,
    masked_l1,
    masked_mse,
    nonsaturating_d_loss,
    nonsaturating_g_loss,
    r1_penalty,
)


def _length_mask(lengths, frames):
    return torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]


# --- masked losses -------------------------------------------------------------------------


@pytest.mark.parametrize("loss_fn", [masked_mse, masked_l1])
def test_masked_loss_ignores_padding(loss_fn):
    torch.manual_seed(0)
    pred, target = torch.randn(3, 10, 4), torch.randn(3, 10, 4)
    mask = _length_mask([10, 6, 1], 10)
    value = loss_fn(pred, target, mask)
    pred2, target2 = pred.clone(), target.clone()
    pred2[~mask] = 1e3
    target2[~mask] = -7.0
    torch.testing.assert_close(loss_fn(pred2, target2, mask), value)
    for b, length in enumerate([10, 6, 1]):
        expected = loss_fn(pred[b : b + 1, :length], target[b : b + 1, :length])
        torch.testing.assert_close(value[b : b + 1], expected)


def test_masked_mse_mask_layouts_agree():
    torch.manual_seed(1)
    pred, target = torch.randn(2, 5, 3, 2), torch.randn(2, 5, 3, 2)
    frames = _length_mask([5, 2], 5)
    a = masked_mse(pred, target, frames)
    b = masked_mse(pred, target, frames[..., None])
    c = masked_mse(pred, target, frames[..., None, None].expand(2, 5, 3, 1))
    d = masked_mse(pred, target, frames[..., None, None].expand(2, 5, 3, 2).float())
    for other in (b, c, d):
        torch.testing.assert_close(other, a)


def test_masked_mse_weights_scale_correctly():
    pred = torch.zeros(1, 2, 1)
    target = torch.tensor([[[1.0], [2.0]]])  # squared errors 1 and 4
    weights = torch.tensor([[3.0, 1.0]])
    torch.testing.assert_close(masked_mse(pred, target, weights), torch.tensor([1.75]))
    # Uniform weights of any scale give the plain mean.
    torch.testing.assert_close(
        masked_mse(pred, target, torch.full((1, 2), 0.3)), torch.tensor([2.5])
    )
    torch.testing.assert_close(masked_l1(pred, target, weights), torch.tensor([1.25]))


def test_all_zero_mask_gives_zero_and_finite_grad():
    pred = torch.randn(2, 4, 3, requires_grad=True)
    target = torch.randn(2, 4, 3)
    mask = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    value = masked_mse(pred, target, mask)
    assert value[0].item() == 0.0
    assert value[1].item() > 0
    value.sum().backward()
    assert torch.isfinite(pred.grad).all()
    assert (pred.grad[0] == 0).all()


def test_masked_loss_shape_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        masked_mse(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(2, 4, 3\)"):
        masked_l1(torch.zeros(2, 4, 3), torch.zeros(2, 4, 3), torch.ones(2, 5))


# --- GAN losses ----------------------------------------------------------------------------


def test_hinge_losses_known_values():
    ones = torch.ones(4, 1, 3, 3)
    assert hinge_d_loss(ones, -ones).item() == 0.0
    assert hinge_d_loss(-ones, ones).item() == 4.0
    assert hinge_d_loss(0 * ones, 0 * ones).item() == 2.0
    assert hinge_g_loss(ones).item() == -1.0
    # Multi-scale: the average over scales.
    assert hinge_d_loss([ones, -ones], [-ones, ones]).item() == 2.0
    assert hinge_g_loss([ones, 3 * ones]).item() == -2.0
    with pytest.raises(ValueError, match="scales"):
        hinge_d_loss([ones, ones], [ones])


def test_nonsaturating_losses_known_values():
    zeros = torch.zeros(3, 5)
    torch.testing.assert_close(nonsaturating_d_loss(zeros, zeros), torch.tensor(2 * math.log(2)))
    torch.testing.assert_close(nonsaturating_g_loss(zeros), torch.tensor(math.log(2)))
    big = torch.full((3, 5), 50.0)
    assert nonsaturating_d_loss(big, -big).item() < 1e-10
    torch.testing.assert_close(
        nonsaturating_g_loss([-big, zeros]), torch.tensor(25 + math.log(2) / 2)
    )


def test_r1_equals_squared_gradient_norm_of_linear_discriminator():
    torch.manual_seed(0)
    disc = nn.Linear(12, 1)
    x = torch.randn(5, 3, 2, 2, requires_grad=True)
    penalty = r1_penalty(disc(x.flatten(1)), x)
    w = disc.weight.detach()
    torch.testing.assert_close(penalty, w.square().sum())
    # Graph is kept: d(||w||^2)/dw = 2w.
    penalty.backward()
    torch.testing.assert_close(disc.weight.grad, 2 * w)
    # Two scales: the second scale has twice the weights, so 4x the penalty; average 2.5x.
    x2 = torch.randn(5, 12, requires_grad=True)
    both = r1_penalty([disc(x2), 2 * disc(x2)], x2)
    torch.testing.assert_close(both, 2.5 * w.square().sum())


def test_r1_requires_grad_on_inputs():
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(nn.Linear(4, 1)(x), x)


# --- perceptual loss -----------------------------------------------------------------------


def _small_vgg_loss(**kwargs):
    return VGGPerceptualLoss(layers=(1, 6), scales=(1.0, 0.5), weights=None, **kwargs)


def test_perceptual_loss_zero_for_identical_positive_otherwise():
    torch.manual_seed(0)
    loss_fn = _small_vgg_loss()
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.equal(loss_fn(images, images), torch.zeros(3))
    other = images.clone()
    other[1] = torch.rand(3, 32, 32) * 2 - 1
    value = loss_fn(other, images)
    assert value.shape == (3,)
    assert value[1] > 0 and value[0] == 0 and value[2] == 0


def test_perceptual_loss_grey_equals_repeated_rgb_and_is_frozen():
    torch.manual_seed(0)
    loss_fn = _small_vgg_loss(layer_weights=(1.0, 0.5))
    grey_a, grey_b = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    pred = grey_a.clone().requires_grad_()
    value = loss_fn(pred, grey_b)
    torch.testing.assert_close(value, loss_fn(grey_a.repeat(1, 3, 1, 1), grey_b.repeat(1, 3, 1, 1)))
    value.sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss_fn.parameters())
    loss_fn.train()
    assert not loss_fn.backbone.training


def test_vgg_auto_weights_missing_warns_and_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.warns(UserWarning, match="RANDOMLY.*weights=<path"):
        loss_fn = VGGPerceptualLoss(layers=(1,), scales=(1.0,), weights="auto")
    assert loss_fn(torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)).item() > 0


def test_vgg_weights_load_from_path_and_from_hub_cache(tmp_path, monkeypatch):
    reference = VGG19Features(layers=(1, 6), weights=None)
    full_keys = {f"features.{k}": v for k, v in reference.features.state_dict().items()}
    full_keys["classifier.0.weight"] = torch.zeros(1)
    path = tmp_path / "vgg19.pth"
    torch.save(full_keys, path)
    loaded = VGG19Features(layers=(1, 6), weights=path)
    for a, b in zip(loaded.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)

    cache = tmp_path / "home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(full_keys, cache / "vgg19-dcbb9e9d.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto = VGG19Features(layers=(1, 6), weights="auto")
    x = torch.rand(1, 3, 8, 8)
    for a, b in zip(auto(x), reference(x)):
        assert torch.equal(a, b)


def test_vgg19_features_match_torchvision_layout():
    with torch.device("meta"):
        tv = torchvision.models.vgg19().features.state_dict()
    ours = VGG19Features(layers=(36,), weights=None).features.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in tv.items()}


def test_perceptual_loss_pluggable_backbone():
    class TwoMaps(nn.Module):
        def forward(self, x):
            return [x, x.mean(dim=1, keepdim=True)]

    loss_fn = PerceptualLoss(
        TwoMaps(), layer_weights=(1.0, 0.0), scales=(1.0,), imagenet_normalize=False
    )
    a, b = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    torch.testing.assert_close(loss_fn(a, b), torch.full((2,), 0.5))
    with pytest.raises(ValueError, match="2 layer weights"):
        VGGPerceptualLoss(layers=(1, 6, 11), layer_weights=(1.0, 2.0), weights=None)
    with pytest.raises(ValueError, match="3 layer weights for 2 feature maps"):
        PerceptualLoss(TwoMaps(), layer_weights=(1.0, 1.0, 1.0))(a, b)
