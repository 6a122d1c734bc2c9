"""MIMO-UNet and MIMO-UNet+ (Cho et al., "Rethinking Coarse-to-Fine Approach in Single Image
Deblurring", ICCV 2021), ported from the official PyTorch code (chosj95/MIMO-UNet @ 5c58013:
`models/MIMOUNet.py` and `models/layers.py`).

Class names, constructor arguments, module nesting and therefore every state-dict key follow the
official code, so an official `{'model': state_dict}` release loads after a plain tensor conversion
(244 keys for MIMOUNet, 532 for MIMOUNetPlus; all conv weights and biases, no buffers).

Quirks kept on purpose (see docs/models/mimounet.md):
* every resampling inside the network is `F.interpolate` in its default *nearest* mode, so the
  half-scale input keeps the even pixels (no anti-aliasing). Here x0.5 is the equivalent stride-2
  slice (see `_nearest_half` for why) and x2/x4 are Paddle's nearest interpolate; both are
  bit-identical to PyTorch's;
* the width (`base_channel = 32`) is hard-coded, only `num_res` is a constructor argument;
* MIMO-UNet+ drops whole channels of both AFF outputs (`Dropout2d(0.1)`) in training mode.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppir.models.archs.init import torch_default_init
from ppir.models.archs.input_checks import check_nchw
from ppir.registry import NETWORKS

__all__ = ["BasicConv", "ResBlock", "EBlock", "DBlock", "AFF", "SCM", "FAM",
           "MIMOUNet", "MIMOUNetPlus"]


class BasicConv(nn.Layer):
    """Conv (or stride-2 transposed conv) with bias, optional BatchNorm, optional ReLU."""

    def __init__(self, in_channel, out_channel, kernel_size, stride, bias=True, norm=False,
                 relu=True, transpose=False):
        super().__init__()
        if bias and norm:
            bias = False

        padding = kernel_size // 2
        layers = []
        if transpose:
            padding = kernel_size // 2 - 1
            layers.append(nn.Conv2DTranspose(in_channel, out_channel, kernel_size, padding=padding,
                                             stride=stride, bias_attr=None if bias else False))
        else:
            layers.append(nn.Conv2D(in_channel, out_channel, kernel_size, padding=padding,
                                    stride=stride, bias_attr=None if bias else False))
        if norm:
            # Never enabled by MIMO-UNet; kept so the constructor matches the official one.
            layers.append(nn.BatchNorm2D(out_channel))
        if relu:
            layers.append(nn.ReLU())
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x)


class ResBlock(nn.Layer):
    """conv3x3 + ReLU, conv3x3, identity skip; no activation after the sum."""

    def __init__(self, in_channel, out_channel):
        super().__init__()
        self.main = nn.Sequential(
            BasicConv(in_channel, out_channel, kernel_size=3, stride=1, relu=True),
            BasicConv(out_channel, out_channel, kernel_size=3, stride=1, relu=False),
        )

    def forward(self, x):
        return self.main(x) + x


class EBlock(nn.Layer):
    def __init__(self, out_channel, num_res=8):
        super().__init__()
        self.layers = nn.Sequential(*[ResBlock(out_channel, out_channel) for _ in range(num_res)])

    def forward(self, x):
        return self.layers(x)


class DBlock(nn.Layer):
    def __init__(self, channel, num_res=8):
        super().__init__()
        self.layers = nn.Sequential(*[ResBlock(channel, channel) for _ in range(num_res)])

    def forward(self, x):
        return self.layers(x)


class AFF(nn.Layer):
    """Asymmetric feature fusion: concat the three encoder scales, 1x1 + ReLU, 3x3."""

    def __init__(self, in_channel, out_channel):
        super().__init__()
        self.conv = nn.Sequential(
            BasicConv(in_channel, out_channel, kernel_size=1, stride=1, relu=True),
            BasicConv(out_channel, out_channel, kernel_size=3, stride=1, relu=False),
        )

    def forward(self, x1, x2, x4):
        return self.conv(paddle.concat([x1, x2, x4], axis=1))


class SCM(nn.Layer):
    """Shallow convolutional module: features of a downscaled input, the input itself concatenated."""

    def __init__(self, out_plane):
        super().__init__()
        self.main = nn.Sequential(
            BasicConv(3, out_plane // 4, kernel_size=3, stride=1, relu=True),
            BasicConv(out_plane // 4, out_plane // 2, kernel_size=1, stride=1, relu=True),
            BasicConv(out_plane // 2, out_plane // 2, kernel_size=3, stride=1, relu=True),
            BasicConv(out_plane // 2, out_plane - 3, kernel_size=1, stride=1, relu=True),
        )
        self.conv = BasicConv(out_plane, out_plane, kernel_size=1, stride=1, relu=False)

    def forward(self, x):
        return self.conv(paddle.concat([x, self.main(x)], axis=1))


class FAM(nn.Layer):
    """Feature attention module: x1 + conv3x3(x1 * x2)."""

    def __init__(self, channel):
        super().__init__()
        self.merge = BasicConv(channel, channel, kernel_size=3, stride=1, relu=False)

    def forward(self, x1, x2):
        return x1 + self.merge(x1 * x2)


def _nearest_half(x):
    """torch's default `F.interpolate(x, scale_factor=0.5)` ('nearest') for even H and W.

    torch samples source index floor(2 * i), i.e. the even rows and columns, which is exactly the
    stride-2 slice. Paddle's dygraph nearest interpolate gives the same pixels, but the oneDNN
    kernel of Paddle Inference 3.2.2 picks the odd ones (max abs error ~1 on the 1/4 output of an
    exported MIMO-UNet), so the slice is used: it is identical in dygraph, static, oneDNN and ONNX.
    """
    return x[:, :, ::2, ::2]


def _nearest_up(x, scale):
    # torch's default 'nearest' with an integer factor repeats pixels; Paddle (all paths) agrees.
    return F.interpolate(x, scale_factor=scale, mode="nearest")


class _MIMOUNetBase(nn.Layer):
    """Shared body of MIMOUNet and MIMOUNetPlus (the official file duplicates it verbatim).

    Only the sub-layers are created here, in the official registration order; the two public
    classes differ by `num_res` and by the Dropout2d on the AFF outputs.
    """

    # H and W must be multiples of 4: two nearest x0.5 steps must be undone exactly by the
    # stride-2 transposed convs and the x2/x4 nearest upsamplings.
    size_multiple = 4

    def __init__(self, num_res):
        super().__init__()
        base_channel = 32

        self.Encoder = nn.LayerList([
            EBlock(base_channel, num_res),
            EBlock(base_channel * 2, num_res),
            EBlock(base_channel * 4, num_res),
        ])

        self.feat_extract = nn.LayerList([
            BasicConv(3, base_channel, kernel_size=3, relu=True, stride=1),
            BasicConv(base_channel, base_channel * 2, kernel_size=3, relu=True, stride=2),
            BasicConv(base_channel * 2, base_channel * 4, kernel_size=3, relu=True, stride=2),
            BasicConv(base_channel * 4, base_channel * 2, kernel_size=4, relu=True, stride=2,
                      transpose=True),
            BasicConv(base_channel * 2, base_channel, kernel_size=4, relu=True, stride=2,
                      transpose=True),
            BasicConv(base_channel, 3, kernel_size=3, relu=False, stride=1),
        ])

        self.Decoder = nn.LayerList([
            DBlock(base_channel * 4, num_res),
            DBlock(base_channel * 2, num_res),
            DBlock(base_channel, num_res),
        ])

        self.Convs = nn.LayerList([
            BasicConv(base_channel * 4, base_channel * 2, kernel_size=1, relu=True, stride=1),
            BasicConv(base_channel * 2, base_channel, kernel_size=1, relu=True, stride=1),
        ])

        self.ConvsOut = nn.LayerList([
            BasicConv(base_channel * 4, 3, kernel_size=3, relu=False, stride=1),
            BasicConv(base_channel * 2, 3, kernel_size=3, relu=False, stride=1),
        ])

        self.AFFs = nn.LayerList([
            AFF(base_channel * 7, base_channel * 1),
            AFF(base_channel * 7, base_channel * 2),
        ])

        self.FAM1 = FAM(base_channel * 4)
        self.SCM1 = SCM(base_channel * 4)
        self.FAM2 = FAM(base_channel * 2)
        self.SCM2 = SCM(base_channel * 2)

        # The official code never calls an init function: training starts from torch's defaults.
        torch_default_init(self)

    def _check_input(self, x):
        check_nchw(type(self).__name__, x, self.size_multiple)

    def _aff_dropout(self, res1, res2):
        return res1, res2

    def forward(self, x):
        self._check_input(x)
        x_2 = _nearest_half(x)
        x_4 = _nearest_half(x_2)
        z2 = self.SCM2(x_2)
        z4 = self.SCM1(x_4)

        outputs = []

        x_ = self.feat_extract[0](x)
        res1 = self.Encoder[0](x_)

        z = self.feat_extract[1](res1)
        z = self.FAM2(z, z2)
        res2 = self.Encoder[1](z)

        z = self.feat_extract[2](res2)
        z = self.FAM1(z, z4)
        z = self.Encoder[2](z)

        z12 = _nearest_half(res1)
        z21 = _nearest_up(res2, 2)
        z42 = _nearest_up(z, 2)
        z41 = _nearest_up(z42, 2)

        res2 = self.AFFs[1](z12, res2, z42)
        res1 = self.AFFs[0](res1, z21, z41)
        res1, res2 = self._aff_dropout(res1, res2)

        z = self.Decoder[0](z)
        z_ = self.ConvsOut[0](z)
        z = self.feat_extract[3](z)
        outputs.append(z_ + x_4)

        z = paddle.concat([z, res2], axis=1)
        z = self.Convs[0](z)
        z = self.Decoder[1](z)
        z_ = self.ConvsOut[1](z)
        z = self.feat_extract[4](z)
        outputs.append(z_ + x_2)

        z = paddle.concat([z, res1], axis=1)
        z = self.Convs[1](z)
        z = self.Decoder[2](z)
        z = self.feat_extract[5](z)
        outputs.append(z + x)

        return outputs


@NETWORKS.register("MIMOUNet")
class MIMOUNet(_MIMOUNetBase):
    """MIMO-UNet: 8 ResBlocks per encoder/decoder block, 6,807,171 parameters.

    forward(x) returns `[out_1/4, out_1/2, out_full]`; evaluation uses the last one.
    """

    def __init__(self, num_res=8):
        super().__init__(num_res)


@NETWORKS.register("MIMOUNetPlus")
class MIMOUNetPlus(_MIMOUNetBase):
    """MIMO-UNet+: 20 ResBlocks per block and Dropout2d(0.1) on both AFF outputs, 16,107,651 params.

    MIMO-UNet++ in the paper is this network with geometric self-ensemble at test time.
    """

    def __init__(self, num_res=20):
        super().__init__(num_res)
        # paddle.nn.Dropout2D zeroes whole channels and rescales by 1/(1-p) in training, like
        # torch.nn.Dropout2d; both are identity in eval mode.
        self.drop1 = nn.Dropout2D(0.1)
        self.drop2 = nn.Dropout2D(0.1)

    def _aff_dropout(self, res1, res2):
        # Official order: drop2 on res2 first, then drop1 on res1 (matters only for RNG streams).
        res2 = self.drop2(res2)
        res1 = self.drop1(res1)
        return res1, res2
