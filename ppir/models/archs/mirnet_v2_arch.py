"""MIRNet-v2: Zamir et al., "Learning Enriched Features for Fast Image Restoration and
Enhancement", TPAMI 2022.

A Paddle port of `MIRNet_v2` from swz30/MIRNetv2 (`basicsr/models/archs/mirnet_v2_arch.py`).
Class names, constructor arguments, defaults and state-dict keys are the official ones, so an
official checkpoint converts key for key (see `ppir/models/convert.py`).

Official behaviour kept on purpose:
* `n_RRG`, `height`, `width` and `scale` are accepted and ignored: the official model always
  builds four RRGs with conv groups 1, 2, 4, 4, and its SKFFs always fuse two inputs.
* `bias` reaches the RCB, RRG and outer convolutions only; the SKFF, Down and Up convolutions are
  always bias-free, and `Up` passes its own `bias=False` on as `align_corners` (so bilinear
  upsampling uses align_corners=False).
* Inside an MRB, the three RCBs and the two SKFFs are each one module applied twice (shared
  weights); only the four up-samplers are separate modules.
* The initialisation is PyTorch's default (the official code has no init function).

Differences that do not change the result:
* SKFF is written on 4-D tensors (sum of branches, softmax over the per-branch logits, weighted
  sum) instead of the official 5-D view/broadcast. The math is the same; the 5-D broadcast
  multiply is very slow under Paddle Inference with oneDNN (3.2.2).
* In-place `+=` of the official code becomes out-of-place addition.
"""
import math

import paddle
from paddle import nn

from ppir.models.archs.input_checks import check_nchw
from ppir.models.archs.init import torch_default_init
from ppir.registry import NETWORKS


# The sub-block forwards have no tensor-dependent Python control flow, so to_static's AST
# rewrite gives the same program as running them as plain Python on static values; skipping it
# (AST mode only, SOT is unaffected) cuts a full-graph export from tens of seconds to a few
# (Paddle 3.2.2 re-converts ~280 forward functions otherwise).
_plain_forward = paddle.jit.not_to_static


def _conv(in_channels, out_channels, kernel_size, padding=0, bias=False, groups=1):
    return nn.Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=padding,
                     groups=groups, bias_attr=None if bias else False)


class SKFF(nn.Layer):
    """Selective kernel feature fusion: softmax attention across `height` same-shaped inputs."""

    def __init__(self, in_channels, height=3, reduction=8, bias=False):
        super().__init__()
        self.height = height
        d = max(int(in_channels / reduction), 4)
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv_du = nn.Sequential(_conv(in_channels, d, 1, bias=bias), nn.LeakyReLU(0.2))
        self.fcs = nn.LayerList([_conv(d, in_channels, 1, bias=bias) for _ in range(height)])
        self.softmax = nn.Softmax(axis=1)

    @_plain_forward
    def forward(self, inp_feats):
        if len(inp_feats) != self.height:  # the official 5-D view fails here too
            raise ValueError(f"SKFF built for {self.height} inputs got {len(inp_feats)}")
        feats_u = inp_feats[0]
        for feat in inp_feats[1:]:
            feats_u = feats_u + feat
        feats_z = self.conv_du(self.avg_pool(feats_u))
        # [N, height, C]: per-channel logits of every branch, softmax across branches.
        logits = paddle.stack([fc(feats_z).flatten(1) for fc in self.fcs], axis=1)
        attention = self.softmax(logits)
        feats_v = None
        for i, feat in enumerate(inp_feats):
            weighted = feat * attention[:, i].unsqueeze([2, 3])
            feats_v = weighted if feats_v is None else feats_v + weighted
        return feats_v


class ContextBlock(nn.Layer):
    """GCNet-style global context (no LayerNorm): softmax-pooled context added to every pixel."""

    def __init__(self, n_feat, bias=False):
        super().__init__()
        self.conv_mask = _conv(n_feat, 1, 1, bias=bias)
        self.softmax = nn.Softmax(axis=2)
        self.channel_add_conv = nn.Sequential(
            _conv(n_feat, n_feat, 1, bias=bias),
            nn.LeakyReLU(0.2),
            _conv(n_feat, n_feat, 1, bias=bias),
        )

    def modeling(self, x):
        input_x = x.flatten(2)                                  # [N, C, HW]
        context_mask = self.softmax(self.conv_mask(x).flatten(2))  # [N, 1, HW]
        context = paddle.matmul(input_x, context_mask, transpose_y=True)  # [N, C, 1]
        return context.unsqueeze(3)                             # [N, C, 1, 1]

    @_plain_forward
    def forward(self, x):
        return x + self.channel_add_conv(self.modeling(x))


class RCB(nn.Layer):
    """Residual context block."""

    def __init__(self, n_feat, kernel_size=3, reduction=8, bias=False, groups=1):
        super().__init__()
        act = nn.LeakyReLU(0.2)
        self.body = nn.Sequential(
            _conv(n_feat, n_feat, 3, padding=1, bias=bias, groups=groups),
            act,
            _conv(n_feat, n_feat, 3, padding=1, bias=bias, groups=groups),
        )
        self.act = act
        self.gcnet = ContextBlock(n_feat, bias=bias)

    @_plain_forward
    def forward(self, x):
        res = self.body(x)
        res = self.act(self.gcnet(res))
        return res + x


class Down(nn.Layer):
    """2x average-pool (ceil mode, padding excluded) then a 1x1 conv widening by chan_factor."""

    def __init__(self, in_channels, chan_factor, bias=False):
        super().__init__()
        self.bot = nn.Sequential(
            # torch AvgPool2d(count_include_pad=False) == Paddle exclusive=True.
            nn.AvgPool2D(2, ceil_mode=True, exclusive=True),
            _conv(in_channels, int(in_channels * chan_factor), 1, bias=bias),
        )

    @_plain_forward
    def forward(self, x):
        return self.bot(x)


class DownSample(nn.Layer):
    def __init__(self, in_channels, scale_factor, chan_factor=2, kernel_size=3):
        super().__init__()
        self.scale_factor = int(math.log2(scale_factor))
        modules_body = []
        for _ in range(self.scale_factor):
            modules_body.append(Down(in_channels, chan_factor))
            in_channels = int(in_channels * chan_factor)
        self.body = nn.Sequential(*modules_body)

    @_plain_forward
    def forward(self, x):
        return self.body(x)


class Up(nn.Layer):
    """1x1 conv narrowing by chan_factor, then 2x bilinear upsampling."""

    def __init__(self, in_channels, chan_factor, bias=False):
        super().__init__()
        self.bot = nn.Sequential(
            _conv(in_channels, int(in_channels // chan_factor), 1, bias=bias),
            # Official quirk: align_corners is the `bias` flag (always False here).
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=bool(bias), align_mode=0),
        )

    @_plain_forward
    def forward(self, x):
        return self.bot(x)


class UpSample(nn.Layer):
    def __init__(self, in_channels, scale_factor, chan_factor=2, kernel_size=3):
        super().__init__()
        self.scale_factor = int(math.log2(scale_factor))
        modules_body = []
        for _ in range(self.scale_factor):
            modules_body.append(Up(in_channels, chan_factor))
            in_channels = int(in_channels // chan_factor)
        self.body = nn.Sequential(*modules_body)

    @_plain_forward
    def forward(self, x):
        return self.body(x)


class MRB(nn.Layer):
    """Multi-scale residual block: three streams (1x, 1/2, 1/4) fused twice by shared SKFFs."""

    def __init__(self, n_feat, height, width, chan_factor, bias, groups):
        super().__init__()
        self.n_feat, self.height, self.width = n_feat, height, width

        self.dau_top = RCB(int(n_feat * chan_factor ** 0), bias=bias, groups=groups)
        self.dau_mid = RCB(int(n_feat * chan_factor ** 1), bias=bias, groups=groups)
        self.dau_bot = RCB(int(n_feat * chan_factor ** 2), bias=bias, groups=groups)

        self.down2 = DownSample(int((chan_factor ** 0) * n_feat), 2, chan_factor)
        self.down4 = nn.Sequential(
            DownSample(int((chan_factor ** 0) * n_feat), 2, chan_factor),
            DownSample(int((chan_factor ** 1) * n_feat), 2, chan_factor),
        )

        self.up21_1 = UpSample(int((chan_factor ** 1) * n_feat), 2, chan_factor)
        self.up21_2 = UpSample(int((chan_factor ** 1) * n_feat), 2, chan_factor)
        self.up32_1 = UpSample(int((chan_factor ** 2) * n_feat), 2, chan_factor)
        self.up32_2 = UpSample(int((chan_factor ** 2) * n_feat), 2, chan_factor)

        self.conv_out = _conv(n_feat, n_feat, 1, bias=bias)

        # Official: SKFF(C, 2) -> height=2 inputs, reduction 8, bias False whatever `bias` is.
        self.skff_top = SKFF(int(n_feat * chan_factor ** 0), 2)
        self.skff_mid = SKFF(int(n_feat * chan_factor ** 1), 2)

    @_plain_forward
    def forward(self, x):
        x_top = x
        x_mid = self.down2(x_top)
        x_bot = self.down4(x_top)

        x_top = self.dau_top(x_top)
        x_mid = self.dau_mid(x_mid)
        x_bot = self.dau_bot(x_bot)

        x_mid = self.skff_mid([x_mid, self.up32_1(x_bot)])
        x_top = self.skff_top([x_top, self.up21_1(x_mid)])

        # Second pass through the SAME RCB and SKFF modules (shared weights).
        x_top = self.dau_top(x_top)
        x_mid = self.dau_mid(x_mid)
        x_bot = self.dau_bot(x_bot)

        x_mid = self.skff_mid([x_mid, self.up32_2(x_bot)])
        x_top = self.skff_top([x_top, self.up21_2(x_mid)])

        return self.conv_out(x_top) + x


class RRG(nn.Layer):
    """Recursive residual group: n_MRB MRBs and a 3x3 conv, with an identity skip."""

    def __init__(self, n_feat, n_MRB, height, width, chan_factor, bias=False, groups=1):
        super().__init__()
        modules_body = [MRB(n_feat, height, width, chan_factor, bias, groups)
                        for _ in range(n_MRB)]
        modules_body.append(_conv(n_feat, n_feat, 3, padding=1, bias=bias))
        self.body = nn.Sequential(*modules_body)

    @_plain_forward
    def forward(self, x):
        return self.body(x) + x


@NETWORKS.register("MIRNetV2")
class MIRNet_v2(nn.Layer):
    """MIRNet-v2. Input NCHW in [0, 1], H and W multiples of 4; output has the input's size.

    `task='defocus_deblurring'` (with inp_channels=6) adds the shallow features back before the
    last conv and drops the image residual, as the official code does.
    """

    size_multiple = 4

    def __init__(self, inp_channels=3, out_channels=3, n_feat=80, chan_factor=1.5, n_RRG=4,
                 n_MRB=2, height=3, width=2, scale=1, bias=False, task=None):
        super().__init__()
        self.task = task
        self.conv_in = _conv(inp_channels, n_feat, 3, padding=1, bias=bias)
        # Official: n_RRG is ignored; always four RRGs with groups 1, 2, 4, 4.
        self.body = nn.Sequential(*[
            RRG(n_feat, n_MRB, height, width, chan_factor, bias, groups=g) for g in (1, 2, 4, 4)
        ])
        self.conv_out = _conv(n_feat, out_channels, 3, padding=1, bias=bias)
        torch_default_init(self)

    def forward(self, inp_img):
        check_nchw("MIRNet_v2", inp_img, self.size_multiple)
        shallow_feats = self.conv_in(inp_img)
        deep_feats = self.body(shallow_feats)
        if self.task == "defocus_deblurring":
            return self.conv_out(deep_feats + shallow_feats)
        return self.conv_out(deep_feats) + inp_img
