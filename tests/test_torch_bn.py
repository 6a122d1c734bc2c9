"""Tests for ppir/models/archs/torch_bn.py: PyTorch's BatchNorm running-variance update."""
import numpy as np
import paddle

from ppir.models.archs.torch_bn import TorchBatchNorm2D


def test_running_stats_follow_pytorch_and_forward_is_unchanged():
    """Two training-mode calls leave running_mean = 0.9 m + 0.1 mean and running_var =
    0.9 v + 0.1 * unbiased batch variance (PyTorch momentum 0.1), also for n = 2 values per
    channel; the output equals nn.BatchNorm2D's; eval mode uses the stored statistics."""
    rng = np.random.default_rng(0)
    bn, plain = TorchBatchNorm2D(3), paddle.nn.BatchNorm2D(3)
    mean, var = np.zeros(3), np.ones(3)
    for shape in ((2, 3, 1, 1), (4, 3, 5, 6)):
        x = rng.standard_normal(shape).astype(np.float32) * 2 + 0.5
        out = bn(paddle.to_tensor(x))
        np.testing.assert_allclose(out.numpy(), plain(paddle.to_tensor(x)).numpy(), atol=1e-6)
        mean = 0.9 * mean + 0.1 * x.mean(axis=(0, 2, 3))
        var = 0.9 * var + 0.1 * x.var(axis=(0, 2, 3), ddof=1)
        np.testing.assert_allclose(bn._mean.numpy(), mean, rtol=1e-5)
        np.testing.assert_allclose(bn._variance.numpy(), var, rtol=1e-5)
    bn.eval()
    x = rng.standard_normal((1, 3, 2, 2)).astype(np.float32)
    want = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
    np.testing.assert_allclose(bn(paddle.to_tensor(x)).numpy(), want, atol=1e-5)
    np.testing.assert_allclose(bn._variance.numpy(), var, rtol=1e-5)
