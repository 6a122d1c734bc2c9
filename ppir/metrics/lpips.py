"""LPIPS v0.1 (Zhang et al. 2018, the `lpips` package 0.1.4) with AlexNet or VGG16 features.

The network is the package's `lpips.LPIPS(net=..., version='0.1', lpips=True, spatial=False)` in
evaluation mode, with the same state-dict keys (`net.slice1.0.weight`, `lin0.model.1.weight`).
ppir ships no weights: save the reference model's state dict once where torch is installed,

    torch.save(lpips.LPIPS(net="vgg").state_dict(), "lpips_vgg.pth")

and pass that file (or a `.pdparams` with the same keys) as `weights`. Inputs are RGB in [0, 1];
they are mapped to [-1, 1] as MISF does (`Normalize(0.5, 0.5)` before `lpips.LPIPS(net='vgg')`).
"""
import numpy as np
import paddle
import paddle.nn as nn

from ppir.errors import CheckpointError, ConfigError

NETS = ("alex", "vgg")
# lpips.pretrained_networks: the torchvision `features` layers split after each ReLU it taps.
_ALEX = [("conv", 3, 64, 11, 4, 2), ("relu",), "|", ("pool", 3), ("conv", 64, 192, 5, 1, 2),
         ("relu",), "|", ("pool", 3), ("conv", 192, 384, 3, 1, 1), ("relu",), "|",
         ("conv", 384, 256, 3, 1, 1), ("relu",), "|", ("conv", 256, 256, 3, 1, 1), ("relu",)]
_VGG_WIDTHS = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]
CHANNELS = {"alex": [64, 192, 384, 256, 256], "vgg": [64, 128, 256, 512, 512]}
# lpips.ScalingLayer: ImageNet statistics expressed on [-1, 1] inputs.
_SHIFT = np.array([-.030, -.088, -.188], np.float32)
_SCALE = np.array([.458, .448, .450], np.float32)


def _vgg_layout():
    layout, c_in = [], 3
    for block, widths in enumerate(_VGG_WIDTHS):
        if block:
            layout += ["|", ("pool", 2)]
        for width in widths:
            layout += [("conv", c_in, width, 3, 1, 1), ("relu",)]
            c_in = width
    return layout


def _slices(layout):
    """Five nn.Sequential whose sub-layers keep torchvision's `features` indices as names."""
    slices, current, index = [], [], 0
    for item in layout + ["|"]:
        if item == "|":
            slices.append(nn.Sequential(*current))
            current = []
            continue
        if item[0] == "conv":
            _, c_in, c_out, k, stride, pad = item
            layer = nn.Conv2D(c_in, c_out, k, stride=stride, padding=pad)
        elif item[0] == "relu":
            layer = nn.ReLU()
        else:
            layer = nn.MaxPool2D(kernel_size=item[1], stride=2)
        current.append((str(index), layer))
        index += 1
    return slices


class _Trunk(nn.Layer):
    def __init__(self, net):
        super().__init__()
        for k, block in enumerate(_slices(_ALEX if net == "alex" else _vgg_layout()), 1):
            setattr(self, f"slice{k}", block)

    def forward(self, x):
        outs = []
        for k in range(1, 6):
            x = getattr(self, f"slice{k}")(x)
            outs.append(x)
        return outs


class NetLinLayer(nn.Layer):
    """lpips.NetLinLayer in eval mode: (Dropout,) 1x1 conv to one channel, no bias."""

    def __init__(self, chn_in):
        super().__init__()
        self.model = nn.Sequential(("0", nn.Dropout()),
                                   ("1", nn.Conv2D(chn_in, 1, 1, bias_attr=False)))

    def forward(self, x):
        return self.model(x)


class LPIPSNet(nn.Layer):
    """Distance between two NCHW batches in [-1, 1]; returns N x 1 x 1 x 1 like the package."""

    def __init__(self, net="alex"):
        super().__init__()
        if net not in NETS:
            raise ConfigError(f"LPIPS net must be one of {', '.join(NETS)}, got {net!r}")
        self.net = _Trunk(net)
        for k, c in enumerate(CHANNELS[net]):
            setattr(self, f"lin{k}", NetLinLayer(c))
        self.register_buffer("shift", paddle.to_tensor(_SHIFT.reshape(1, 3, 1, 1)),
                             persistable=False)
        self.register_buffer("scale", paddle.to_tensor(_SCALE.reshape(1, 3, 1, 1)),
                             persistable=False)
        self.eval()

    def forward(self, in0, in1):
        feats0 = self.net((in0 - self.shift) / self.scale)
        feats1 = self.net((in1 - self.shift) / self.scale)
        total = 0
        for k, (f0, f1) in enumerate(zip(feats0, feats1)):
            diff = (_unit(f0) - _unit(f1)) ** 2
            total = total + getattr(self, f"lin{k}")(diff).mean(axis=[2, 3], keepdim=True)
        return total


def _unit(feat, eps=1e-10):
    """lpips.normalize_tensor: divide by the channel-wise L2 norm (+eps)."""
    return feat / (paddle.sqrt(paddle.sum(feat ** 2, axis=1, keepdim=True)) + eps)


def load_lpips_weights(net, source):
    """Load a state dict (a mapping, a `.pdparams` file or a torch `.pth` of `lpips.LPIPS`).

    The package's duplicate `lins.*` entries and its scaling buffers are ignored; any missing
    or mis-shaped weight is a CheckpointError.
    """
    if isinstance(source, dict):
        state, where = source, "state dict"
    elif str(source).endswith(".pdparams"):
        state, where = paddle.load(str(source)), str(source)
    else:
        from ppir.utils.pth import read_pth

        state, where = read_pth(source), str(source)
    own = net.state_dict()
    values = {}
    for key, param in own.items():
        if key not in state:
            raise CheckpointError(f"{where}: LPIPS weight {key} missing")
        value = np.asarray(state[key].numpy() if hasattr(state[key], "numpy") else state[key],
                           dtype=np.float32)
        if list(value.shape) != list(param.shape):
            raise CheckpointError(f"{where}: {key} has shape {list(value.shape)}, "
                                  f"expected {list(param.shape)}")
        values[key] = value
    net.set_state_dict(values)
    return net


def lpips_distance(net, pred, gt):
    """LPIPS of two HWC RGB images in [0, 1] (numpy), as a float."""
    def to_tensor(img):
        arr = np.ascontiguousarray(np.asarray(img, np.float32).transpose(2, 0, 1)[None])
        return paddle.to_tensor(arr * 2.0 - 1.0)

    with paddle.no_grad():
        return float(net(to_tensor(pred), to_tensor(gt)).numpy().reshape(()))
