"""MISF: Li et al., "MISF: Multi-level Interactive Siamese Filtering for High-Fidelity Image
Inpainting", CVPR 2022.

A Paddle port of the official tsingqguo/misf networks: `InpaintGenerator` + `ResnetBlock`
(`src/networks.py`) with its kernel-prediction branch `KPN` / `KernelConv` / `Basic`
(`kpn/network.py`), and the EdgeConnect spectral-norm PatchGAN `Discriminator`. Sub-module and
parameter names are the official ones, so official checkpoints convert key for key (see
`ppir/models/convert.py`).

Official behaviour kept on purpose:
* The generator's input is the official one: the 4-channel `cat(image * (1 - mask), mask)`,
  image in [0, 1], mask 1 on holes (`InpaintingModel.forward` in `src/models.py` builds it;
  `misf_input` here does the same). The output is `(tanh(x) + 1) / 2` in [0, 1], the raw
  prediction over the whole image (compositing with the known pixels is the caller's job).
* InstanceNorm without affine parameters (`nn.InstanceNorm2d(C, track_running_stats=False)`).
* The kernel-prediction branch predicts 576 channels at H/4 and the official code widens them to
  2304 = 256 x 9 with a 5-D nearest interpolation over (channels, H, W); on channels that is
  exactly `repeat_interleave(4)`, so the 9 taps of feature channel n come from source channels
  floor((9n + k) / 4). `KPN.conv_final` is never used but is in the official state dict.
* Feature- and image-level filtering are per-pixel, per-channel 3x3 filters, unnormalised, over
  the zero-padded input (`KernelConv` with kernel_size [3], no separable core, no bias,
  white_level 1).
* Initialisation N(0, 0.02) for every conv / linear weight, biases 0 (`BaseNetwork.init_weights`).
* The Discriminator's `conv1` and `features` are the same module, so both names are in its state
  dict; it returns `(out, [conv1, ..., conv5])`.

Differences:
* The official `InpaintGenerator(config, ...)` reads `config.FILTER_TYPE` / `config.kernel_size`
  (absent from `config.yml`) and never uses them: the argument is dropped.
* `KPN`, `KernelConv` and `Basic` are written for the options `kpn.utils.create_generator()`
  uses (kernel_size [3], no separable kernels, no attention, bilinear up-sampling, no core bias);
  the unused alternatives are not ported.
* The official kernel resize uses size (W // 4, H // 4) where (H // 4, W // 4) is meant, which
  silently scrambles the filters of non-square inputs. The bare generator therefore refuses
  H != W (and sizes that are not multiples of 4) with a ValueError; predict / deploy pad to a
  square multiple of 4 and crop back.
"""
import paddle
import paddle.nn.functional as F
from paddle import nn

from ppir.registry import NETWORKS

_KERNEL = 3  # KernelConv kernel_size=[3]: one 3x3 filter per pixel and channel


def misf_input(images, masks):
    """The generator's official input: `cat(images * (1 - masks), masks)` (masks 1 on holes)."""
    return paddle.concat([images * (1 - masks), masks], axis=1)


def normal_init(net, std=0.02):
    """`BaseNetwork.init_weights('normal', 0.02)`: N(0, std) conv / linear weights, zero biases.

    Spectral-norm layers are initialised through `weight_orig`, the parameter the official
    in-place init reaches (its `weight` shares storage with `weight_orig`).
    """
    normal = nn.initializer.Normal(0.0, std)
    zero = nn.initializer.Constant(0.0)
    for layer in net.sublayers(include_self=True):
        if not isinstance(layer, (nn.Conv2D, nn.Conv2DTranspose, nn.Linear)):
            continue
        weight = layer._parameters.get("weight_orig", layer._parameters.get("weight"))
        with paddle.no_grad():
            normal(weight)
            if layer.bias is not None:
                zero(layer.bias)
    return net


def _instance_norm(channels):
    # torch InstanceNorm2d(track_running_stats=False): no affine parameters, eps 1e-5.
    return nn.InstanceNorm2D(channels, epsilon=1e-5, weight_attr=False, bias_attr=False)


def _reflect(pad):
    return nn.Pad2D(pad, mode="reflect")


def kernel_filter(x, kernels):
    """`KernelConv(kernel_size=[3])`: out[b, n] = sum_k kernels[b, 9n + k] * shift_k(x[b, n]).

    The 9 shifts are the zero-padded 3x3 neighbourhood in raster order, i.e. `F.unfold`'s order.
    """
    n = x.shape[1]
    taps = _KERNEL * _KERNEL
    patches = F.unfold(x, _KERNEL, paddings=_KERNEL // 2).reshape([0, n, taps, -1])
    out = (kernels.reshape([0, n, taps, -1]) * patches).sum(axis=2)
    return out.reshape(paddle.shape(x))


class ResnetBlock(nn.Layer):
    """Dilated residual block: reflect-pad, 3x3 dilated conv, IN, ReLU, 3x3 conv, IN, + x."""

    def __init__(self, dim, dilation=1):
        super().__init__()
        self.conv_block = nn.Sequential(
            _reflect(dilation),
            nn.Conv2D(dim, dim, 3, dilation=dilation),
            _instance_norm(dim),
            nn.ReLU(),
            _reflect(1),
            nn.Conv2D(dim, dim, 3),
            _instance_norm(dim),
        )

    def forward(self, x):
        return x + self.conv_block(x)


class Basic(nn.Layer):
    """Three 3x3 conv + ReLU (the official attention options are off in MISF)."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2D(in_ch, out_ch, 3, padding=1), nn.ReLU(),
            nn.Conv2D(out_ch, out_ch, 3, padding=1), nn.ReLU(),
            nn.Conv2D(out_ch, out_ch, 3, padding=1), nn.ReLU(),
        )

    def forward(self, x):
        return self.conv1(x)


def repeat_channels(x, times):
    """`repeat_interleave(x, times, axis=1)` on NCHW, written as stacked copies flattened into
    the channel axis (the same copy, bit for bit): paddle2onnx 2.1 turns repeat_interleave into
    a Tile node whose repeats do not match the input's rank, which onnxruntime rejects."""
    return paddle.stack([x] * times, axis=2).flatten(1, 2)


class KPN(nn.Layer):
    """Kernel prediction branch: per-pixel 3x3 filters for the H/4 features and the image."""

    def __init__(self):
        super().__init__()
        taps = _KERNEL * _KERNEL
        self.conv1 = Basic(4, 64)
        self.conv2 = Basic(64, 128)
        self.conv3 = Basic(128 + 128, 256)
        self.conv4 = Basic(256, 512)
        self.conv7 = Basic(256 + 512, 256)
        self.conv8 = Basic(256 + 256, 128)
        self.conv9 = Basic(128 + 64, 64)
        self.kernels = nn.Conv2D(256, 64 * taps, 1)
        self.core_img = nn.Conv2D(64, 3 * taps, 1)
        self.conv_final = nn.Conv2D(12, 3, 3, padding=1)  # unused, kept for the official keys

    def forward(self, data_with_est, x):
        conv1 = self.conv1(data_with_est)
        conv2 = self.conv2(F.avg_pool2d(conv1, 2, 2))
        conv2 = paddle.concat([conv2, x], axis=1)
        conv3 = self.conv3(F.avg_pool2d(conv2, 2, 2))
        # Official: 5-D nearest resize of 576 channels to 256 * 9 (= repeat each one 4 times).
        kernels = repeat_channels(self.kernels(conv3), 4)

        conv4 = self.conv4(conv3)
        conv7 = self.conv7(paddle.concat([conv3, conv4], axis=1))
        up7 = F.interpolate(conv7, scale_factor=2, mode="bilinear", align_corners=False)
        conv8 = self.conv8(paddle.concat([conv2, up7], axis=1))
        up8 = F.interpolate(conv8, scale_factor=2, mode="bilinear", align_corners=False)
        conv9 = self.conv9(paddle.concat([conv1, up8], axis=1))
        return kernels, self.core_img(conv9)


@NETWORKS.register("MISFGenerator")
class InpaintGenerator(nn.Layer):
    """MISF generator. Input: `misf_input(image, mask)`, NCHW 4 channels, square, H = W a
    multiple of 4. Output: the inpainted image, NCHW 3 channels in [0, 1]."""

    size_multiple = 4

    def __init__(self, residual_blocks=8, init_weights=True):
        super().__init__()
        self.encoder0 = nn.Sequential(
            _reflect(3), nn.Conv2D(4, 64, 7), _instance_norm(64), nn.ReLU())
        self.encoder1 = nn.Sequential(
            nn.Conv2D(64, 128, 4, stride=2, padding=1), _instance_norm(128), nn.ReLU())
        self.encoder2 = nn.Sequential(
            nn.Conv2D(128, 256, 4, stride=2, padding=1), _instance_norm(256), nn.ReLU())
        self.middle = nn.Sequential(*[ResnetBlock(256, 2) for _ in range(residual_blocks)])
        self.decoder = nn.Sequential(
            nn.Conv2DTranspose(256, 128, 4, stride=2, padding=1), _instance_norm(128), nn.ReLU(),
            nn.Conv2DTranspose(128, 64, 4, stride=2, padding=1), _instance_norm(64), nn.ReLU(),
            _reflect(3), nn.Conv2D(64, 3, 7),
        )
        self.kpn_model = KPN()
        if init_weights:
            normal_init(self)

    def _check_size(self, x):
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h != w or h % m:
            raise ValueError(
                f"MISFGenerator needs a square input with a side that is a multiple of {m}, got "
                f"{h}x{w} (input shape {list(x.shape)}): the official kernel resize scrambles "
                f"non-square inputs; pad the image and mask to a square first")

    def forward(self, x):
        if paddle.in_dynamic_mode():
            self._check_size(x)
        inputs = x
        x = self.encoder0(x)
        x = self.encoder1(x)
        kernels, kernels_img = self.kpn_model(inputs, x)
        x = self.encoder2(x)
        x = kernel_filter(x, kernels)
        x = self.middle(x)
        x = self.decoder(x)
        x = kernel_filter(x, kernels_img)
        return (paddle.tanh(x) + 1) / 2


def _sn_conv(in_channels, out_channels, stride, use_spectral_norm):
    conv = nn.Conv2D(in_channels, out_channels, 4, stride=stride, padding=1,
                     bias_attr=False if use_spectral_norm else None)
    if use_spectral_norm:
        # Same tensors and power iteration as torch.nn.utils.spectral_norm (weight_orig,
        # weight_u, weight_v; one iteration per training-mode forward, none in eval mode).
        conv = nn.utils.spectral_norm(conv, dim=0)
    return conv


@NETWORKS.register("MISFDiscriminator")
class Discriminator(nn.Layer):
    """EdgeConnect PatchGAN: five 4x4 convs (64, 128, 256 stride 2; 512, 1 stride 1), spectral
    norm, LeakyReLU(0.2). Returns `(sigmoid(conv5) or conv5, [conv1, ..., conv5])`.

    Shared by MISF and ICT's guided upsampler (both copy EdgeConnect's `Discriminator`).
    """

    def __init__(self, in_channels=3, use_sigmoid=True, use_spectral_norm=True,
                 init_weights=True):
        super().__init__()
        self.use_sigmoid = use_sigmoid
        sn = use_spectral_norm

        def block(cin, cout, stride, act=True):
            layers = [_sn_conv(cin, cout, stride, sn)]
            return nn.Sequential(*layers, nn.LeakyReLU(0.2)) if act else nn.Sequential(*layers)

        # Official alias: `self.conv1 = self.features = ...` puts both names in the state dict.
        self.conv1 = self.features = block(in_channels, 64, 2)
        self.conv2 = block(64, 128, 2)
        self.conv3 = block(128, 256, 2)
        self.conv4 = block(256, 512, 1)
        self.conv5 = block(512, 1, 1, act=False)
        if init_weights:
            normal_init(self)

    def forward(self, x):
        conv1 = self.conv1(x)
        conv2 = self.conv2(conv1)
        conv3 = self.conv3(conv2)
        conv4 = self.conv4(conv3)
        conv5 = self.conv5(conv4)
        out = F.sigmoid(conv5) if self.use_sigmoid else conv5
        return out, [conv1, conv2, conv3, conv4, conv5]
