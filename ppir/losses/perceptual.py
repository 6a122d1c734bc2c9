"""Perceptual and style losses on VGG activations (EdgeConnect's `PerceptualLoss` / `StyleLoss`,
which MISF, ICT's guided upsampler and, with VGG16 pools, CTSDG use).

Both take the feature dicts of `ppir.models.archs.vgg_arch.VGGFeatures(x, loss.layers)` for the
output and the target, so a model runs the extractor once per image and shares it between losses:

    feats_out, feats_gt = vgg(out, loss.layers), vgg(gt, loss.layers)
    value = loss(feats_out, feats_gt)
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppir.errors import ConfigError
from ppir.registry import LOSSES


def gram_matrix(feat):
    """B x C x C Gram matrix divided by C * H * W (EdgeConnect's `compute_gram`)."""
    b, c, h, w = feat.shape
    f = feat.reshape([b, c, h * w])
    return paddle.bmm(f, f.transpose([0, 2, 1])) / (c * h * w)


class _FeatureLoss(nn.Layer):
    def __init__(self, layers, weights=None):
        super().__init__()
        self.layers = list(layers)
        self.weights = [1.0] * len(self.layers) if weights is None else [float(w) for w in weights]
        if not self.layers or len(self.weights) != len(self.layers):
            raise ConfigError(f"{type(self).__name__}: {len(self.layers)} layers but "
                              f"{len(self.weights)} weights")

    # Subclasses define `term(fx, fy)`: the loss between two feature maps of one layer.

    def forward(self, feats_x, feats_y):
        total = 0.0
        for name, weight in zip(self.layers, self.weights):
            total = total + weight * self.term(feats_x[name], feats_y[name])
        return total


@LOSSES.register("PerceptualLoss")
class PerceptualLoss(_FeatureLoss):
    """sum_i w_i * mean|phi_i(x) - phi_i(y)|; EdgeConnect's default is relu1_1 ... relu5_1, all 1."""

    def __init__(self, layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                 weights=None):
        super().__init__(layers, weights)

    def term(self, fx, fy):
        return F.l1_loss(fx, fy)


@LOSSES.register("StyleLoss")
class StyleLoss(_FeatureLoss):
    """sum_i w_i * mean|G(phi_i(x)) - G(phi_i(y))| with G the Gram matrix / (C H W); EdgeConnect's
    layers are relu2_2, relu3_4, relu4_4, relu5_2."""

    def __init__(self, layers=("relu2_2", "relu3_4", "relu4_4", "relu5_2"), weights=None):
        super().__init__(layers, weights)

    def term(self, fx, fy):
        return F.l1_loss(gram_matrix(fx), gram_matrix(fy))
