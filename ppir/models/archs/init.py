"""PyTorch's default parameter initialisation, for networks ported from PyTorch code.

The official repositories never call an init function, so their training starts from PyTorch's
layer defaults: `kaiming_uniform_(w, a=sqrt(5))` for the weight, which reduces to
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same interval for the bias. Paddle's own defaults
differ (Xavier-normal / Normal weights, zero bias), so a port trained from scratch would start
from another distribution than the paper. `torch_default_init(net)` rewrites every convolution
and linear layer in place, drawing from Paddle's global generator (`paddle.seed` applies).

Fan-in follows torch's `_calculate_fan_in_and_fan_out`, which reads dimension 1 of the stored
weight times the kernel size. That is `in_channels / groups` for Conv and, as a torch quirk kept
on purpose, `out_channels / groups` for ConvTranspose (Paddle stores both layouts like torch).
Paddle's Linear stores its weight as [in, out] (torch: [out, in]), so its fan-in is dimension 0.
"""
import math

import paddle
from paddle import nn

_CONV_TYPES = (nn.Conv1D, nn.Conv2D, nn.Conv3D, nn.Conv1DTranspose, nn.Conv2DTranspose,
               nn.Conv3DTranspose)


def _fan_in(layer, weight):
    shape = list(weight.shape)
    if isinstance(layer, nn.Linear):
        return shape[0]
    receptive = 1
    for k in shape[2:]:
        receptive *= k
    return shape[1] * receptive


def _uniform_(param, bound):
    paddle.nn.initializer.Uniform(low=-bound, high=bound)(param)


def torch_default_init(net):
    """Re-initialise every Conv*/ConvTranspose*/Linear sublayer of `net` (and `net` itself) the
    way PyTorch initialises a freshly built layer. Returns `net`."""
    for layer in net.sublayers(include_self=True):
        if not isinstance(layer, _CONV_TYPES + (nn.Linear,)):
            continue
        weight = getattr(layer, "weight", None)
        if weight is None:
            continue
        fan_in = _fan_in(layer, weight)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        with paddle.no_grad():
            _uniform_(weight, bound)
            bias = getattr(layer, "bias", None)
            if bias is not None:
                _uniform_(bias, bound)
    return net
