"""Pixel losses on the final output."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppir.registry import LOSSES


def final_output(outputs):
    """Networks with deep supervision return a list; the last entry is the full-resolution image."""
    return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs


@LOSSES.register("L1Loss")
class L1Loss(nn.Layer):
    """Mean absolute error of the final output (MIRNetV2's training loss)."""

    def forward(self, outputs, target):
        return F.l1_loss(final_output(outputs), target)


@LOSSES.register("CharbonnierLoss")
class CharbonnierLoss(nn.Layer):
    """sqrt((x - y)^2 + eps^2), averaged; the smooth L1 variant several restoration papers use."""

    def __init__(self, eps=1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, outputs, target):
        diff = final_output(outputs) - target
        return paddle.mean(paddle.sqrt(diff * diff + self.eps * self.eps))
