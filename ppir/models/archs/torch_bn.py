"""BatchNorm whose running variance follows PyTorch.

In training mode PyTorch's `BatchNorm2d` folds the *unbiased* batch variance (divided by n - 1,
n = N x H x W) into `running_var`; Paddle's `BatchNorm2D` folds the biased one (divided by n).
The forward pass is the same (both normalise with the biased batch variance), but a Paddle
training stores running variances n / (n - 1) smaller, which matters wherever n is small (the
deepest levels of an encoder-decoder: n = batch x 2 x 2 at 256x256) and shows in every later
eval-mode output. `TorchBatchNorm2D` corrects the stored value after each training-mode update.
"""
import paddle
from paddle import nn


class TorchBatchNorm2D(nn.BatchNorm2D):
    """`nn.BatchNorm2D` with PyTorch's running-variance update (same parameters and keys)."""

    def forward(self, x):
        if not self.training or self._use_global_stats:
            return super().forward(x)
        previous = self._variance.detach().clone()
        out = super().forward(x)
        n = x.shape[0] * x.shape[2] * x.shape[3]
        if n > 1:
            # Paddle stored m * old + (1 - m) * biased; PyTorch keeps m * old + (1 - m) * biased * n / (n - 1).
            with paddle.no_grad():
                updated = self._variance.detach()
                self._variance.set_value(updated + (updated - self._momentum * previous) / (n - 1))
        return out
