"""Multi-scale frequency-reconstruction (MSFR) loss of MIMO-UNet (Cho et al., ICCV 2021).

The official training step (chosj95/MIMO-UNet `train.py`) computes, for the three network outputs
`[out_1/4, out_1/2, out_full]`,

    content = sum_k L1(pred_k, gt_k)
    fft     = sum_k L1(FFT(pred_k), FFT(gt_k))
    total   = content + 0.1 * fft

where `gt_1/2` and `gt_1/4` come from `F.interpolate(gt, scale_factor=0.5 / 0.25, mode='bilinear')`
(half-pixel centres, no antialiasing) applied to the full-size target. Note the asymmetry kept on
purpose: the network resamples its inputs with *nearest*, the loss targets are *bilinear*.

`FFT` is the old `torch.rfft(x, 2, normalized=False, onesided=False)`: the full, unnormalised 2-D
FFT over H and W, real and imaginary parts stacked in a trailing axis of size 2. Each L1 is a mean
over every element of that stack, i.e. over both parts. Here that is
`paddle.as_real(paddle.fft.fft2(x))`.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppir.registry import LOSSES


def _fft_l1(pred, target):
    return F.l1_loss(paddle.as_real(paddle.fft.fft2(pred)),
                     paddle.as_real(paddle.fft.fft2(target)))


@LOSSES.register("MSFRLoss")
class MSFRLoss(nn.Layer):
    """`content_weight * sum_k L1 + fft_weight * sum_k L1_fft` over a coarse-to-fine output list.

    `forward(preds, target)` returns the scalar total. `preds` is the network's list, coarsest
    first; output k of n is compared with `target` resized by 0.5 ** (n - 1 - k) (bilinear,
    align_corners=False, as the official code). A single tensor counts as a one-element list.
    After each call `self.last_parts` holds the unweighted `{"content": ..., "fft": ...}` sums as
    detached 0-d tensors, for logging (the official log prints both).

    Defaults are the paper's: content_weight=1.0, fft_weight=0.1.
    """

    def __init__(self, content_weight=1.0, fft_weight=0.1):
        super().__init__()
        self.content_weight = float(content_weight)
        self.fft_weight = float(fft_weight)
        self.last_parts = {}

    def forward(self, preds, target):
        if isinstance(preds, paddle.Tensor):
            preds = [preds]
        n = len(preds)
        content = 0.0
        fft = 0.0
        for k, pred in enumerate(preds):
            gt = self._target_at(target, 0.5 ** (n - 1 - k))
            if pred.shape != gt.shape and paddle.in_dynamic_mode():
                raise ValueError(
                    f"MSFRLoss: output {k} of {n} has shape {list(pred.shape)} but the target "
                    f"resized for it has shape {list(gt.shape)} (target {list(target.shape)})")
            content = content + F.l1_loss(pred, gt)
            fft = fft + _fft_l1(pred, gt)
        self.last_parts = {"content": content.detach(), "fft": fft.detach()}
        return self.content_weight * content + self.fft_weight * fft

    @staticmethod
    def _target_at(target, scale):
        if scale == 1:
            return target
        # scale_factor, as the official code: for H and W multiples of 4 (which MIMO-UNet requires)
        # Paddle 3.2.2 then samples exactly torch's positions (checked to 1.2e-7).
        return F.interpolate(target, scale_factor=scale, mode="bilinear", align_corners=False)
