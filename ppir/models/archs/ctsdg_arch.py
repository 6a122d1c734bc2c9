"""CTSDG: Guo et al., "Image Inpainting via Conditional Texture and Structure Dual Generation",
ICCV 2021.

A Paddle port of `Generator` and `Discriminator` from xiefan-guo/ctsdg (`models/generator/*.py`,
`models/discriminator/*.py`). Submodule names, constructor arguments and state-dict keys are the
official ones, so an official checkpoint converts key for key (`ppir/models/convert.py`).

Conventions (official): the image is in [-1, 1]; the structure input is `cat(edge, gray) * mask`;
the mask has one channel with 1 = known pixel, 0 = hole. H and W must be multiples of 128 (seven
stride-2 partial convolutions).

Official behaviour kept on purpose:
* Coupled streams: the texture decoder starts from the structure encoder's deepest feature and
  the structure decoder from the texture encoder's.
* Bi-GFF updates the structure feature with the already updated texture feature.
* RAL downsamples the foreground with align_corners=True; MSFA applies a ReLU before its softmax.
* The last texture decoder level takes `64 + out_channels` inputs (the official code uses
  `out_channels` there, not `image_in_channels`).
* BatchNorm running variances are updated with the unbiased batch variance, as PyTorch does
  (`ppir/models/archs/torch_bn.py`).
* Initialisation (`utils/misc.py weights_init`): conv weights N(0, 0.02), biases 0, BatchNorm
  weights N(1, 0.02); the discriminator's EdgeDetector keeps the PyTorch default.
* The discriminator's first layer is one module under two names (`conv1` and `features`), so its
  tensors appear twice in the state dict, as in the official one.

Differences that do not change the result:
* The partial convolution is stateless: the official layer caches the mask ratio between calls,
  which only matters when it is called without a mask (never, here).
* The mask-update convolution sums the mask over channels first and convolves one channel with a
  k x k box of ones; the official all-ones (out, in, k, k) kernel gives the same integer counts
  (exact in fp32) at 1/out_channels of the cost.
* RAL's patch convolutions are batched matrix products on unfolded patches (same sums).
"""
import paddle
import paddle.nn.functional as F
from paddle import nn

from ppir.models.archs.input_checks import check_nchw
from ppir.models.archs.init import torch_default_init
from ppir.models.archs.torch_bn import TorchBatchNorm2D
from ppir.registry import NETWORKS


# ----------------------------------------------------------------------------------------------
# Partial convolution
# ----------------------------------------------------------------------------------------------

class PartialConv2d(nn.Conv2D):
    """NVIDIA partial convolution (`pconv.py`), returning `(output, updated_mask)`.

    `multi_channel=True`: the mask has the input's channels and the updated mask the output's.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, multi_channel=False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, bias_attr=None if bias else False)
        self.multi_channel = multi_channel
        k = self._kernel_size
        self.slide_winsize = (in_channels if multi_channel else 1) * k[0] * k[1]

    def _mask_ratio(self, mask):
        with paddle.no_grad():
            counts = F.conv2d(paddle.sum(mask, axis=1, keepdim=True),
                              paddle.ones([1, 1, *self._kernel_size], dtype=mask.dtype),
                              stride=self._stride, padding=self._padding,
                              dilation=self._dilation)
            # A same-shaped numerator: Paddle Inference's oneDNN kernel computes `scalar / tensor`
            # with its operands swapped (Paddle 3.2), which an export would then bake in.
            ratio = paddle.full_like(counts, self.slide_winsize) / (counts + 1e-8)
            update = paddle.clip(counts, 0.0, 1.0)
            ratio = ratio * update
            if self.multi_channel:
                update = paddle.expand(update, [-1, self._out_channels, -1, -1])
        return ratio, update

    def forward(self, x, mask=None):
        if mask is None:
            n, c, h, w = x.shape
            mask = paddle.ones([n, c, h, w] if self.multi_channel else [1, 1, h, w], x.dtype)
            raw = super().forward(x)
        else:
            raw = super().forward(x * mask)
        ratio, update = self._mask_ratio(mask)
        if self.bias is None:
            return raw * ratio, update
        bias = self.bias.reshape([1, -1, 1, 1])
        return ((raw - bias) * ratio + bias) * update, update


class PConvBNActiv(nn.Layer):
    """Partial conv + optional BatchNorm + ReLU / LeakyReLU(0.2) (`pconv.py`)."""

    _SAMPLES = {"down-7": (7, 2, 3), "down-5": (5, 2, 2), "down-3": (3, 2, 1)}

    def __init__(self, in_channels, out_channels, bn=True, sample="none-3", activ="relu",
                 bias=False):
        super().__init__()
        kernel, stride, padding = self._SAMPLES.get(sample, (3, 1, 1))
        self.conv = PartialConv2d(in_channels, out_channels, kernel, stride=stride,
                                  padding=padding, bias=bias, multi_channel=True)
        self.bn = TorchBatchNorm2D(out_channels) if bn else None
        if activ == "relu":
            self.activation = nn.ReLU()
        elif activ == "leaky":
            self.activation = nn.LeakyReLU(0.2)
        else:
            self.activation = None

    def forward(self, images, masks):
        images, masks = self.conv(images, masks)
        if self.bn is not None:
            images = self.bn(images)
        if self.activation is not None:
            images = self.activation(images)
        return images, masks


# ----------------------------------------------------------------------------------------------
# Projection heads, Bi-GFF, CFA
# ----------------------------------------------------------------------------------------------

class Bottleneck(nn.Layer):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2D(inplanes, planes, 3, stride=stride, padding=1, bias_attr=False)
        self.bn1 = TorchBatchNorm2D(planes)
        self.conv2 = nn.Conv2D(planes, inplanes, 3, stride=stride, padding=1, bias_attr=False)
        self.bn2 = TorchBatchNorm2D(inplanes)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class Feature2Structure(nn.Layer):
    """Decoder features -> one-channel edge map in (0, 1), for the intermediate loss."""

    def __init__(self, inplanes=64, planes=16):
        super().__init__()
        self.structure_resolver = Bottleneck(inplanes, planes)
        self.out_layer = nn.Sequential(nn.Conv2D(64, 1, 1), nn.Sigmoid())

    def forward(self, structure_feature):
        return self.out_layer(self.structure_resolver(structure_feature))


class Feature2Texture(nn.Layer):
    """Decoder features -> RGB image in (-1, 1), for the intermediate loss."""

    def __init__(self, inplanes=64, planes=16):
        super().__init__()
        self.texture_resolver = Bottleneck(inplanes, planes)
        self.out_layer = nn.Sequential(nn.Conv2D(64, 3, 1), nn.Tanh())

    def forward(self, texture_feature):
        return self.out_layer(self.texture_resolver(texture_feature))


class BiGFF(nn.Layer):
    """Bi-directional gated feature fusion."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.structure_gate = nn.Sequential(
            nn.Conv2D(2 * in_channels, out_channels, 3, padding=1), nn.Sigmoid())
        self.texture_gate = nn.Sequential(
            nn.Conv2D(2 * in_channels, out_channels, 3, padding=1), nn.Sigmoid())
        zeros = nn.initializer.Constant(0.0)
        self.structure_gamma = self.create_parameter([1], default_initializer=zeros)
        self.texture_gamma = self.create_parameter([1], default_initializer=zeros)

    def forward(self, texture_feature, structure_feature):
        energy = paddle.concat([texture_feature, structure_feature], axis=1)
        gate_structure_to_texture = self.structure_gate(energy)
        gate_texture_to_structure = self.texture_gate(energy)
        texture_feature = texture_feature + self.texture_gamma * (
            gate_structure_to_texture * structure_feature)
        # Official: the structure update reads the texture feature updated just above.
        structure_feature = structure_feature + self.structure_gamma * (
            gate_texture_to_structure * texture_feature)
        return paddle.concat([texture_feature, structure_feature], axis=1)


class RAL(nn.Layer):
    """Region affinity learning: attention from 3x3 foreground patches at half resolution,
    pasting back 4x4 background patches with a stride-2 transposed convolution.

    The official score map is a conv2d of the foreground with its own L2-normalised patches and
    the paste-back a conv_transpose2d with the background patches, one sample at a time. Both are
    written here as batched matrix products on unfolded patches (the same sums; Paddle's CPU
    conv kernels with 4096 output channels are several times slower than the matmul).
    """

    def __init__(self, kernel_size=3, stride=1, rate=2, softmax_scale=10.0):
        super().__init__()
        if kernel_size != 3 or stride != 1 or rate != 2:
            # The official reshapes and the fixed padding of 1 only line up for these values.
            raise ValueError(f"RAL supports kernel_size=3, stride=1, rate=2 (the official "
                             f"values), got {kernel_size}, {stride}, {rate}")
        self.kernel_size, self.stride, self.rate = kernel_size, stride, rate
        self.softmax_scale = softmax_scale

    def forward(self, background, foreground):
        foreground = _half_bilinear_align_corners(foreground)
        # [N, C*k*k, L] columns, zero padding 1 (`extract_patches` in `utils/misc.py`); position
        # l of the foreground grid is both the patch index and the score-map pixel.
        fg_cols = F.unfold(foreground, self.kernel_size, strides=self.stride, paddings=1)
        norm = paddle.sqrt(paddle.sum(fg_cols * fg_cols, axis=1, keepdim=True))
        fg_kernels = fg_cols / paddle.clip(norm, min=1e-4)
        score = paddle.matmul(fg_kernels, fg_cols, transpose_x=True)       # [N, L, L]
        attention = F.softmax(score * self.softmax_scale, axis=1)
        attention = paddle.clip(attention, min=1e-8)

        k_bg = 2 * self.rate
        bg_cols = F.unfold(background, k_bg, strides=self.stride * self.rate, paddings=1)
        pasted = paddle.matmul(bg_cols, attention)                          # [N, C*4*4, L]
        out = _fold_4x4_stride2(pasted, background.shape[1], foreground.shape[2], foreground.shape[3])
        return out / 4.0


def _interleave(even, odd, axis):
    """Rows (axis 2) or columns (axis 3) `even[i], odd[i], even[i+1], ...`."""
    shape = [0, 0, -1, paddle.shape(even)[3]] if axis == 2 else [0, 0, 0, -1]
    return paddle.stack([even, odd], axis=axis + 1).reshape(shape)


def upsample2_nearest(x):
    """`F.interpolate(x, scale_factor=2, mode="nearest")`, exactly. Paddle Inference's oneDNN
    resize returns garbage for a 1x1 input (Paddle 3.2), which is the bottleneck of a 128x128
    image, so the decoder's x2 resizes are written with elementwise ops."""
    x = _interleave(x, x, 2)
    return _interleave(x, x, 3)


def upsample2_bilinear(x):
    """`F.interpolate(x, scale_factor=2, mode="bilinear")` (align_corners=False): with edge
    replication, output 2i is 0.25 x[i-1] + 0.75 x[i] and 2i+1 is 0.75 x[i] + 0.25 x[i+1], per
    axis (same weights; sums in another order). See `upsample2_nearest` for why."""
    for axis in (2, 3):
        first = x[:, :, :1] if axis == 2 else x[:, :, :, :1]
        last = x[:, :, -1:] if axis == 2 else x[:, :, :, -1:]
        before = paddle.concat([first, x], axis=axis)
        after = paddle.concat([x, last], axis=axis)
        n = paddle.shape(x)[axis]
        before = paddle.slice(before, [axis], [0], [n])
        after = paddle.slice(after, [axis], [1], [n + 1])
        x = _interleave(0.25 * before + 0.75 * x, 0.75 * x + 0.25 * after, axis)
    return x


def _align_corners_weights(ramp_in):
    """[H/2, H] bilinear weights of an align_corners=True resize to half size, built from the
    ramp 0..H-1 with the kernel's arithmetic (`src = i * (H - 1) / (H/2 - 1)`, lower neighbour
    and fraction)."""
    ramp_out = ramp_in[::2]
    src = ramp_out * (ramp_in[-1] / paddle.clip(ramp_out[-1], min=1.0))
    low = paddle.floor(src)
    frac = (src - low).unsqueeze(1)
    low, ramp = low.unsqueeze(1), ramp_in.unsqueeze(0)
    return (1.0 - frac) * (ramp == low).astype(src.dtype) + frac * (ramp == low + 1.0).astype(src.dtype)


def _half_bilinear_align_corners(x):
    """`F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=True)` (official RAL) as
    two matrix products: Paddle Inference's oneDNN resize ignores align_corners (Paddle 3.2), so
    an exported model would sample other positions. Same weights; sums in another order."""
    ramp_h = paddle.cumsum(paddle.ones_like(x[0, 0, :, 0])) - 1.0
    ramp_w = paddle.cumsum(paddle.ones_like(x[0, 0, 0, :])) - 1.0
    out = paddle.matmul(_align_corners_weights(ramp_h), x)
    return paddle.matmul(out, _align_corners_weights(ramp_w), transpose_y=True)


def _fold_4x4_stride2(cols, channels, h, w):
    """`F.fold(cols, (2h, 2w), 4, strides=2, paddings=1)` of [N, C*16, h*w] columns (the official
    conv_transpose2d paste-back), as reshapes, shifts and sums: `fold` needs a static output size,
    which an export with dynamic H and W does not have. Kernel row 2a + b of patch i lands on
    padded row 2(i + a) + b, so each (a_y, a_x) quarter of the kernel is one pixel shuffle shifted
    by (2 a_y, 2 a_x)."""
    patches = cols.reshape([0, channels, 4, 4, h, w])
    out = 0
    for ay in (0, 1):
        for ax in (0, 1):
            quarter = patches[:, :, 2 * ay:2 * ay + 2, 2 * ax:2 * ax + 2]
            quarter = quarter.transpose([0, 1, 4, 2, 5, 3]).reshape([0, channels, 2 * h, 2 * w])
            out = out + F.pad(quarter, [2 * ax, 2 - 2 * ax, 2 * ay, 2 - 2 * ay])
    return out[:, :, 1:2 * h + 1, 1:2 * w + 1]


class MSFA(nn.Layer):
    """Multi-scale feature aggregation: four dilated 3x3 branches mixed by a softmax weight map."""

    def __init__(self, in_channels=64, out_channels=64, dilation_rate_list=(1, 2, 4, 8)):
        super().__init__()
        self.dilation_rate_list = list(dilation_rate_list)
        for i, rate in enumerate(self.dilation_rate_list):
            self.add_sublayer(f"dilated_conv_{i}", nn.Sequential(
                nn.Conv2D(in_channels, out_channels, 3, dilation=rate, padding=rate), nn.ReLU()))
        self.weight_calc = nn.Sequential(
            nn.Conv2D(in_channels, out_channels, 3, padding=1), nn.ReLU(),
            nn.Conv2D(out_channels, len(self.dilation_rate_list), 1),
            nn.ReLU(),  # official: ReLU before the softmax
            nn.Softmax(axis=1))

    def forward(self, x):
        weight_map = self.weight_calc(x)
        # The official sums exactly four terms whatever the list length.
        out = weight_map[:, 0:1] * getattr(self, "dilated_conv_0")(x)
        for i in range(1, 4):
            out = out + weight_map[:, i:i + 1] * getattr(self, f"dilated_conv_{i}")(x)
        return out


class CFA(nn.Layer):
    """Contextual feature aggregation: RAL, then MSFA."""

    def __init__(self, kernel_size=3, stride=1, rate=2, softmax_scale=10.0, in_channels=64,
                 out_channels=64, dilation_rate_list=(1, 2, 4, 8)):
        super().__init__()
        self.ral = RAL(kernel_size, stride, rate, softmax_scale)
        self.msfa = MSFA(in_channels, out_channels, dilation_rate_list)

    def forward(self, background, foreground):
        return self.msfa(self.ral(background, foreground))


# ----------------------------------------------------------------------------------------------
# Initialisation and BatchNorm freezing
# ----------------------------------------------------------------------------------------------

def _official_init(layers, gain=0.02):
    """`utils/misc.py weights_init('normal', 0.02)`: every conv (partial or not; the spectral-norm
    `weight_orig` where present) N(0, gain) with zero bias, every BatchNorm weight N(1, gain) with
    zero bias. Draws from Paddle's global generator."""
    normal, one_normal = nn.initializer.Normal(0.0, gain), nn.initializer.Normal(1.0, gain)
    zeros = nn.initializer.Constant(0.0)
    with paddle.no_grad():
        for layer in layers:
            if isinstance(layer, nn.Conv2D):
                weight = getattr(layer, "weight_orig", None)
                normal(weight if weight is not None else layer.weight)
                if layer.bias is not None:
                    zeros(layer.bias)
            elif isinstance(layer, nn.BatchNorm2D):
                one_normal(layer.weight)
                zeros(layer.bias)


def freeze_batchnorm_stats(net):
    """Put every BatchNorm of `net` in eval mode (running statistics used and left unchanged)
    while its affine weight and bias keep training, as the official fine-tuning does
    (`Generator.train()` with `freeze_ec_bn=True`).

    Paddle's `Layer.train()` sets `training` on every sublayer directly and never calls a
    sublayer's own `train()`, so calling it on a wrapper undoes the freeze: call this after every
    switch to training mode. Returns `net`."""
    for layer in net.sublayers(include_self=True):
        if isinstance(layer, nn.BatchNorm2D):
            layer.eval()
    return net


# ----------------------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------------------

_ENCODER = ((64, "down-7"), (128, "down-5"), (256, "down-5"), (512, "down-3"), (512, "down-3"),
            (512, "down-3"), (512, "down-3"))
_DECODER_OUT = (64, 64, 128, 256, 512, 512, 512)  # dc_*_1 .. dc_*_7


@NETWORKS.register("CTSDGGenerator")
class CTSDGGenerator(nn.Layer):
    """CTSDG generator (official `Generator`).

    forward(input_image [N,3,H,W] in [-1,1] times the mask, input_edge [N,2,H,W] =
    cat(edge, gray) times the mask, mask [N,1,H,W] with 1 = known) ->
    (output in [-1,1], projected_image in [-1,1], projected_edge in [0,1]), all [N,*,H,W].
    Set `freeze_ec_bn = True` for the official fine-tuning phase (see `freeze_batchnorm_stats`).
    """

    size_multiple = 128

    def __init__(self, image_in_channels=3, edge_in_channels=2, out_channels=3, init_weights=True):
        super().__init__()
        self.freeze_ec_bn = False
        for stream, in_channels, last_skip in (("texture", image_in_channels, out_channels),
                                               ("structure", edge_in_channels, 2)):
            prev = in_channels
            for level, (width, sample) in enumerate(_ENCODER, start=1):
                self.add_sublayer(f"ec_{stream}_{level}", PConvBNActiv(
                    prev, width, bn=level > 1, sample=sample))
                prev = width
            skips = (last_skip,) + tuple(w for w, _ in _ENCODER[:-1])
            for level in range(7, 0, -1):
                in_up = 512 if level == 7 else _DECODER_OUT[level]
                self.add_sublayer(f"dc_{stream}_{level}", PConvBNActiv(
                    in_up + skips[level - 1], _DECODER_OUT[level - 1], activ="leaky"))

        self.structure_feature_projection = Feature2Structure()
        self.texture_feature_projection = Feature2Texture()
        self.bigff = BiGFF(in_channels=64, out_channels=64)
        self.fusion_layer1 = nn.Sequential(nn.Conv2D(128, 64, 3, stride=2, padding=1),
                                           nn.LeakyReLU(0.2))
        self.cfa = CFA(in_channels=64, out_channels=64)
        self.fusion_layer2 = nn.Sequential(nn.Conv2D(128, 64, 3, padding=1), nn.LeakyReLU(0.2))
        self.out_layer = nn.Sequential(nn.Conv2D(192, 3, 1), nn.Tanh())
        if init_weights:
            _official_init(self.sublayers())

    def _encode(self, stream, x, mask):
        feats, masks = [x], [mask]
        for level in range(1, 8):
            x, mask = getattr(self, f"ec_{stream}_{level}")(x, mask)
            feats.append(x)
            masks.append(mask)
        return feats, masks

    def _decode(self, stream, x, mask, feats, masks):
        for level in range(7, 0, -1):
            x = upsample2_bilinear(x)
            mask = upsample2_nearest(mask)
            x = paddle.concat([x, feats[level - 1]], axis=1)
            mask = paddle.concat([mask, masks[level - 1]], axis=1)
            x, mask = getattr(self, f"dc_{stream}_{level}")(x, mask)
        return x

    def forward(self, input_image, input_edge, mask):
        check_nchw("CTSDGGenerator", input_image, self.size_multiple)
        t_feats, t_masks = self._encode(
            "texture", input_image, paddle.concat([mask] * input_image.shape[1], axis=1))
        s_feats, s_masks = self._encode(
            "structure", input_edge, paddle.concat([mask] * input_edge.shape[1], axis=1))
        # Coupling: each decoder starts from the other stream's deepest encoder feature.
        dc_texture = self._decode("texture", s_feats[7], s_masks[7], t_feats, t_masks)
        dc_structure = self._decode("structure", t_feats[7], t_masks[7], s_feats, s_masks)

        projected_image = self.texture_feature_projection(dc_texture)
        projected_edge = self.structure_feature_projection(dc_structure)

        output_bigff = self.bigff(dc_texture, dc_structure)
        output = self.fusion_layer1(output_bigff)
        output_atten = self.cfa(output, output)
        output = self.fusion_layer2(paddle.concat([output, output_atten], axis=1))
        output = upsample2_bilinear(output)
        output = self.out_layer(paddle.concat([output, output_bigff], axis=1))
        return output, projected_image, projected_edge

    def train(self):
        """Training mode; with `freeze_ec_bn` every BatchNorm stays in eval mode (official)."""
        super().train()
        if self.freeze_ec_bn:
            freeze_batchnorm_stats(self)
        return self


# ----------------------------------------------------------------------------------------------
# Discriminator
# ----------------------------------------------------------------------------------------------

class _PatchBranch(nn.Layer):
    """PatchGAN on 4x4 convs (`texture_branch.py` / `structure_branch.py`, identical bodies)."""

    def __init__(self, in_channels, use_sigmoid=True, use_spectral_norm=True, init_weights=True):
        super().__init__()
        self.use_sigmoid = use_sigmoid

        def block(cin, cout, stride, act=True):
            conv = nn.Conv2D(cin, cout, 4, stride=stride, padding=1,
                             bias_attr=False if use_spectral_norm else None)
            if use_spectral_norm:
                conv = nn.utils.spectral_norm(conv)
            return nn.Sequential(conv, nn.LeakyReLU(0.2)) if act else nn.Sequential(conv)

        # Official: `self.conv1 = self.features = ...`; one module, both names in the state dict.
        self.conv1 = self.features = block(in_channels, 64, 2)
        self.conv2 = block(64, 128, 2)
        self.conv3 = block(128, 256, 2)
        self.conv4 = block(256, 512, 1)
        self.conv5 = block(512, 1, 1, act=False)
        if init_weights:
            _official_init(self.sublayers())

    def forward(self, x):
        pred = self.conv5(self.conv4(self.conv3(self.conv2(self.conv1(x)))))
        return F.sigmoid(pred) if self.use_sigmoid else pred


class TextureBranch(_PatchBranch):
    def __init__(self, in_channels=3, use_sigmoid=True, use_spectral_norm=True, init_weights=True):
        super().__init__(in_channels, use_sigmoid, use_spectral_norm, init_weights)


class StructureBranch(_PatchBranch):
    def __init__(self, in_channels=4, use_sigmoid=True, use_spectral_norm=True, init_weights=True):
        super().__init__(in_channels, use_sigmoid, use_spectral_norm, init_weights)


class EdgeDetector(nn.Layer):
    """Predicts a one-channel edge map in (0, 1) from an RGB image."""

    def __init__(self, in_channels=3, mid_channels=16, out_channels=1):
        super().__init__()
        self.projection = nn.Sequential(
            nn.Conv2D(in_channels, mid_channels, 3, padding=1), TorchBatchNorm2D(mid_channels),
            nn.ReLU())
        self.res_layer = nn.Sequential(
            nn.Conv2D(mid_channels, mid_channels, 3, padding=1), TorchBatchNorm2D(mid_channels),
            nn.ReLU(),
            nn.Conv2D(mid_channels, mid_channels, 3, padding=1), TorchBatchNorm2D(mid_channels))
        self.relu = nn.ReLU()
        self.out_layer = nn.Sequential(nn.Conv2D(mid_channels, out_channels, 1), nn.Sigmoid())
        torch_default_init(self)  # the official never re-initialises it

    def forward(self, image):
        image = self.projection(image)
        edge = self.relu(self.res_layer(image) + image)
        return self.out_layer(edge)


@NETWORKS.register("CTSDGDiscriminator")
class CTSDGDiscriminator(nn.Layer):
    """CTSDG discriminator (official `Discriminator`).

    forward(output [N,3,H,W] image in [-1,1], gray_image [N,1,H,W], real_edge [N,1,H,W],
    is_real) -> (cat(texture_pred, structure_pred) [N,2,h,w] in (0,1), fake_edge [N,1,H,W]).
    The structure branch sees `real_edge` when `is_real` is true and otherwise the edge the
    EdgeDetector predicts from `output`. Spectral norm updates its power-iteration vectors on
    every training-mode call, as in PyTorch.
    """

    def __init__(self, image_in_channels=3, edge_in_channels=2):
        super().__init__()
        self.texture_branch = TextureBranch(in_channels=image_in_channels)
        self.structure_branch = StructureBranch(in_channels=edge_in_channels)
        self.edge_detector = EdgeDetector()

    def forward(self, output, gray_image, real_edge, is_real):
        texture_pred = self.texture_branch(output)
        fake_edge = self.edge_detector(output)
        edge = real_edge if is_real else fake_edge
        structure_pred = self.structure_branch(paddle.concat([edge, gray_image], axis=1))
        return paddle.concat([texture_pred, structure_pred], axis=1), fake_edge
