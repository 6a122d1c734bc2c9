"""MSFR loss (MIMO-UNet's multi-scale content + frequency loss) against the official formula."""
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ppir.losses import LOSSES
from ppir.losses.fft_loss import MSFRLoss

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "mimounet_align.npz")


def numpy_msfr(preds, targets):
    """The official loss written out in float64 numpy, targets given per scale."""
    content = sum(np.abs(p - t).mean() for p, t in zip(preds, targets))
    fft = 0.0
    for p, t in zip(preds, targets):
        d = np.fft.fft2(p.astype(np.float64)) - np.fft.fft2(t.astype(np.float64))
        fft += np.concatenate([np.abs(d.real), np.abs(d.imag)]).mean()
    return content, fft


def test_matches_official_value():
    """On the official network outputs and target, the loss equals the value the official
    train.py formula gave in PyTorch (total, content and fft parts, relative 1e-6)."""
    fx = np.load(FIXTURE)
    preds = [paddle.to_tensor(fx[f"mimounet_out{i}"]) for i in range(3)]
    loss_fn = MSFRLoss()
    total = loss_fn(preds, paddle.to_tensor(fx["target"]))
    ref_total, ref_content, ref_fft = fx["loss"]
    assert total.shape == [] and total.dtype == paddle.float32
    np.testing.assert_allclose(total.item(), ref_total, rtol=1e-6)
    np.testing.assert_allclose(loss_fn.last_parts["content"].item(), ref_content, rtol=1e-6)
    np.testing.assert_allclose(loss_fn.last_parts["fft"].item(), ref_fft, rtol=1e-6)


def test_formula_against_numpy_and_weights():
    """content = sum of per-scale L1; fft = sum of L1 over real and imaginary parts of the full
    unnormalised 2-D FFT; total = content_weight * content + fft_weight * fft."""
    rng = np.random.RandomState(0)
    preds = [rng.rand(2, 3, s, s).astype(np.float32) for s in (4, 8, 16)]
    target = rng.rand(2, 3, 16, 16).astype(np.float32)
    t = paddle.to_tensor(target)
    targets = [F.interpolate(t, scale_factor=s, mode="bilinear").numpy() for s in (0.25, 0.5)]
    content, fft = numpy_msfr(preds, targets + [target])
    loss_fn = MSFRLoss(content_weight=2.0, fft_weight=0.5)
    total = loss_fn([paddle.to_tensor(p) for p in preds], t)
    np.testing.assert_allclose(loss_fn.last_parts["content"].item(), content, rtol=1e-5)
    np.testing.assert_allclose(loss_fn.last_parts["fft"].item(), fft, rtol=1e-5)
    np.testing.assert_allclose(total.item(), 2.0 * content + 0.5 * fft, rtol=1e-5)


def test_targets_are_bilinear_not_nearest():
    """The coarse targets are bilinear (half-pixel) downscales of the full target, as in the
    official train.py, even though the network itself resamples with nearest."""
    target = paddle.rand([1, 3, 16, 16])
    bil = [F.interpolate(target, scale_factor=s, mode="bilinear", align_corners=False)
           for s in (0.25, 0.5)]
    loss_fn = MSFRLoss()
    assert loss_fn(bil + [target], target).item() < 1e-6
    near = [target[:, :, ::4, ::4], target[:, :, ::2, ::2]]
    assert loss_fn(near + [target], target).item() > 1e-2


def test_gradient_reaches_every_output():
    """The loss is differentiable through the FFT term for all three outputs."""
    preds = [paddle.rand([1, 3, s, s]) for s in (8, 16, 32)]
    for p in preds:
        p.stop_gradient = False
    MSFRLoss()(preds, paddle.rand([1, 3, 32, 32])).backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in preds)


def test_shape_mismatch_is_named():
    """A prediction whose size does not match the resized target raises a ValueError naming
    both shapes rather than broadcasting silently."""
    preds = [paddle.rand([1, 3, 8, 8]), paddle.rand([1, 3, 16, 16]), paddle.rand([1, 3, 30, 32])]
    with pytest.raises(ValueError, match=r"output 2 of 3 has shape \[1, 3, 30, 32\]"):
        MSFRLoss()(preds, paddle.rand([1, 3, 32, 32]))


def test_registered_by_name():
    """Configs build the loss as `{name: MSFRLoss, ...}` through the LOSSES registry."""
    loss_fn = LOSSES.build({"name": "MSFRLoss", "fft_weight": 0.1})
    assert isinstance(loss_fn, MSFRLoss) and loss_fn.fft_weight == 0.1
