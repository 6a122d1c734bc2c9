"""A frozen VGG16 / VGG19 feature extractor for perceptual and style losses.

The layers are torchvision's `vgg16().features` / `vgg19().features` (3x3 convs with padding 1,
ReLU, 2x2 max-pooling), stored under the same keys (`features.N.weight`, `features.N.bias`), so
a torchvision ImageNet checkpoint converts with

    python tools/convert_weights.py --arch VGG19 --src vgg19-dcbb9e9d.pth --dst weights/vgg19.pdparams

(its `classifier.*` keys are dropped). Activations are named after the layer they come from:
`conv3_4`, `relu3_4`, `pool3` (the block's max-pool). The EdgeConnect family (MISF, ICT's guided
upsampler) feeds [0, 1] images without ImageNet normalisation; `normalize=True` applies it for
codes that do.
"""
import os

import numpy as np
import paddle
import paddle.nn as nn

from ppir.errors import CheckpointError, ConfigError
from ppir.registry import NETWORKS

# Convs per block (torchvision cfg "D" and "E").
_BLOCKS = {"VGG16": (2, 2, 3, 3, 3), "VGG19": (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names(arch):
    """Names of the `features` layers in index order: conv1_1, relu1_1, ..., pool5."""
    names = []
    for block, convs in enumerate(_BLOCKS[arch], 1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


class VGGFeatures(nn.Layer):
    """torchvision's VGG `features`; `forward(x, layers)` returns {name: activation} for the
    asked layers, running only as deep as the deepest of them. Parameters never train."""

    arch = None

    def __init__(self, normalize=False):
        super().__init__()
        layers, c_in = [], 3
        for name in layer_names(self.arch):
            if name.startswith("conv"):
                c_out = _WIDTHS[int(name[4]) - 1]
                layers.append(nn.Conv2D(c_in, c_out, 3, padding=1))
                c_in = c_out
            elif name.startswith("relu"):
                layers.append(nn.ReLU())
            else:
                layers.append(nn.MaxPool2D(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.names = layer_names(self.arch)
        self.normalize = bool(normalize)
        if self.normalize:
            self.register_buffer("mean", paddle.to_tensor(_IMAGENET_MEAN).reshape([1, 3, 1, 1]),
                                 persistable=False)
            self.register_buffer("std", paddle.to_tensor(_IMAGENET_STD).reshape([1, 3, 1, 1]),
                                 persistable=False)
        for param in self.parameters():
            param.stop_gradient = True
        self.eval()

    def forward(self, x, layers):
        unknown = [name for name in layers if name not in self.names]
        if unknown:
            raise ConfigError(f"{self.arch} has no layer {unknown[0]!r}; layers are "
                              f"conv<b>_<i>, relu<b>_<i>, pool<b> (e.g. relu3_4, pool2)")
        if self.normalize:
            x = (x - self.mean) / self.std
        wanted, last = set(layers), max(self.names.index(name) for name in layers)
        out = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if self.names[index] in wanted:
                out[self.names[index]] = x
            if index == last:
                break
        return out


@NETWORKS.register("VGG16")
class VGG16Features(VGGFeatures):
    arch = "VGG16"


@NETWORKS.register("VGG19")
class VGG19Features(VGGFeatures):
    arch = "VGG19"


def build_vgg(arch, weights, normalize=False, where="vgg_weights"):
    """A frozen `arch` ("VGG16" / "VGG19") extractor with `weights` loaded: a `.pdparams` written
    by tools/convert_weights.py, or torchvision's `.pth` itself (converted on the fly).

    A missing file is a one-line CheckpointError naming it and how to make it.
    """
    if arch not in _BLOCKS:
        raise ConfigError(f"{where}: unknown VGG {arch!r}; use one of {', '.join(_BLOCKS)}")
    net = NETWORKS.get(arch)(normalize=normalize)
    path = os.fspath(weights) if weights is not None else None
    if not path or not os.path.isfile(path):
        raise CheckpointError(
            f"{where}: {arch} weights file not found: {path} (convert torchvision's ImageNet "
            f"checkpoint with tools/convert_weights.py --arch {arch} --src <file>.pth --dst {path})")
    if path.endswith(".pdparams"):
        state = paddle.load(path)
        state = {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in state.items()}
    else:
        from ppir.models.convert import convert_state_dict, read_pth

        state = convert_state_dict(arch, read_pth(path), net=net)
    missing = [k for k in net.state_dict() if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not {arch} features weights (missing {missing[0]}, "
                              f"{len(missing)} keys in all)")
    for key, param in net.state_dict().items():
        if tuple(state[key].shape) != tuple(param.shape):
            raise CheckpointError(f"{path}: {key} has shape {list(state[key].shape)}, "
                                  f"expected {list(param.shape)}")
    net.set_state_dict({k: np.asarray(state[k], np.float32) for k in net.state_dict()})
    return net


def seeded_vgg_state(arch, seed=0):
    """Reproducible stand-in weights (He-normal convs, small biases) with the real keys and
    shapes: tests and the demo run without ImageNet weights. The same numpy stream can be
    loaded into torchvision's VGG for cross-framework checks."""
    rng = np.random.default_rng(seed)
    state, c_in = {}, 3
    for index, name in enumerate(layer_names(arch)):
        if name.startswith("conv"):
            c_out = _WIDTHS[int(name[4]) - 1]
            std = np.sqrt(2.0 / (c_in * 9))
            state[f"features.{index}.weight"] = (rng.standard_normal((c_out, c_in, 3, 3)) * std
                                                 ).astype(np.float32)
            state[f"features.{index}.bias"] = rng.uniform(-0.01, 0.01, c_out).astype(np.float32)
            c_in = c_out
    return state
