"""The Inception v3 of FID (pytorch-fid 0.3.0 `inception.py`), up to its 2048-d pool3 features.

pytorch-fid's `fid_inception_v3()` builds torchvision's `Inception3(num_classes=1008,
aux_logits=False)` and swaps in four patched block types, because the TensorFlow graph its
weights come from (`inception-2015-12-05`) differs from torchvision's Inception:

* FIDInceptionA / C / E_1 average-pool their pool branch without counting the zero padding
  (TensorFlow's `avg_pool`), i.e. Paddle's `exclusive=True`;
* FIDInceptionE_2 (Mixed_7c) max-pools its pool branch instead of average-pooling it.

`InceptionV3(output_blocks=[3])` then resizes the [0, 1] input to 299x299 (bilinear,
align_corners=False), maps it to [-1, 1] and runs Conv2d_1a_3x3 ... Mixed_7c and a global average
pool. Every BasicConv2d is a bias-free conv, BatchNorm (eps 0.001) in inference mode and ReLU.

State-dict keys equal the released weights file `pt_inception-2015-12-05-6726825d.pth`
(`Conv2d_1a_3x3.conv.weight`, `Mixed_7c.branch_pool.bn.running_var`, ...) after the generic
BatchNorm renames; its 1008-way `fc` classifier is not part of the port and is dropped on
conversion (ppir/models/convert.py ARCH_RULES):

    python tools/convert_weights.py --arch FIDInceptionV3 \
        --src pt_inception-2015-12-05-6726825d.pth --dst weights/fid_inception.pdparams
"""
import os

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppir.errors import CheckpointError, ConfigError
from ppir.registry import NETWORKS

FEATURE_DIM = 2048
BLOCK_DIMS = (64, 192, 768, 2048)  # pytorch-fid InceptionV3.BLOCK_INDEX_BY_DIM
WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"


class BasicConv2d(nn.Layer):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels, epsilon=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x):
    """3x3 stride-1 average that ignores the padding, as TensorFlow's does (pytorch-fid's patch:
    `count_include_pad=False`)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, exclusive=True)


class FIDInceptionA(nn.Layer):
    def __init__(self, in_channels, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x):
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return paddle.concat([self.branch1x1(x), branch5x5, branch3x3dbl,
                              self.branch_pool(_tf_avg_pool(x))], axis=1)


class InceptionB(nn.Layer):
    """torchvision's InceptionB (Mixed_6a), unpatched."""

    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return paddle.concat([self.branch3x3(x), branch3x3dbl,
                              F.max_pool2d(x, kernel_size=3, stride=2)], axis=1)


class FIDInceptionC(nn.Layer):
    def __init__(self, in_channels, channels_7x7):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x):
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for k in range(1, 6):
            branch7x7dbl = getattr(self, f"branch7x7dbl_{k}")(branch7x7dbl)
        return paddle.concat([self.branch1x1(x), branch7x7, branch7x7dbl,
                              self.branch_pool(_tf_avg_pool(x))], axis=1)


class InceptionD(nn.Layer):
    """torchvision's InceptionD (Mixed_7a), unpatched."""

    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = x
        for k in range(1, 5):
            branch7x7x3 = getattr(self, f"branch7x7x3_{k}")(branch7x7x3)
        return paddle.concat([branch3x3, branch7x7x3, F.max_pool2d(x, kernel_size=3, stride=2)],
                             axis=1)


class FIDInceptionE(nn.Layer):
    """FIDInceptionE_1 (`max_pool=False`, Mixed_7b) and FIDInceptionE_2 (`max_pool=True`,
    Mixed_7c): identical but for the pool branch."""

    def __init__(self, in_channels, max_pool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x):
        branch3x3 = self.branch3x3_1(x)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _tf_avg_pool(x)
        return paddle.concat([
            self.branch1x1(x),
            self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3),
            self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl),
            self.branch_pool(pooled)], axis=1)


@NETWORKS.register("FIDInceptionV3")
class FIDInceptionV3(nn.Layer):
    """NCHW RGB images in [0, 1] (any size) -> N x dims features, always in inference mode.

    `dims` picks pytorch-fid's output block as its `--dims` does: 2048 = pool3 (the FID
    standard), 768 = before the auxiliary classifier, 192 / 64 = after the second / first max
    pool; maps larger than 1x1 are averaged as `get_activations` does. `resize_input` /
    `normalize_input` are pytorch-fid's `InceptionV3` options (both on there and here by default).
    """

    def __init__(self, resize_input=True, normalize_input=True):
        super().__init__()
        self.resize_input, self.normalize_input = bool(resize_input), bool(normalize_input)
        # Registration order is torchvision's, so state-dict keys come in the file's order.
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)
        for param in self.parameters():
            param.stop_gradient = True
        self.eval()

    def _blocks(self):
        """pytorch-fid's four output blocks, each a list of steps."""
        def pool(x):
            return F.max_pool2d(x, kernel_size=3, stride=2)
        return [[self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3, pool],
                [self.Conv2d_3b_1x1, self.Conv2d_4a_3x3, pool],
                [self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                 self.Mixed_6c, self.Mixed_6d, self.Mixed_6e],
                [self.Mixed_7a, self.Mixed_7b, self.Mixed_7c]]

    def forward(self, x, dims=FEATURE_DIM):
        if dims not in BLOCK_DIMS:
            raise ConfigError(f"FID dims must be one of {', '.join(map(str, BLOCK_DIMS))}, "
                              f"got {dims!r}")
        if self.resize_input:
            x = F.interpolate(x, size=[299, 299], mode="bilinear", align_corners=False)
        if self.normalize_input:
            x = 2 * x - 1
        for block in self._blocks()[:BLOCK_DIMS.index(dims) + 1]:
            for step in block:
                x = step(x)
        return x.mean(axis=[2, 3])


def load_fid_inception(weights, where="FID weights"):
    """FIDInceptionV3 with `weights` loaded: a `.pdparams` from tools/convert_weights.py or
    pytorch-fid's `.pth` itself (converted on the fly). A missing file is one CheckpointError
    line naming it and how to convert it; a file that does not fit names the keys."""
    from ppir.models.convert import convert_state_dict, read_pth

    path = os.fspath(weights) if weights is not None else None
    if not path or not os.path.isfile(path):
        raise CheckpointError(
            f"{where}: FID Inception weights file not found: {path} (convert pytorch-fid's "
            f"{WEIGHTS_NAME} with tools/convert_weights.py --arch FIDInceptionV3 --src "
            f"{WEIGHTS_NAME} --dst <file>.pdparams)")
    net = FIDInceptionV3()
    if path.endswith(".pdparams"):
        state = {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v))
                 for k, v in paddle.load(path).items()}
    else:
        state = read_pth(path)
    try:
        state = convert_state_dict("FIDInceptionV3", state, net=net)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    net.set_state_dict(state)
    return net
