"""PSNR and SSIM in float64 numpy, with every protocol choice as an explicit argument.

Papers disagree on how they score the same images, and each choice moves the number by up to a
few tenths of a dB (see docs/metrics.md): RGB or the Y channel, a border crop, rounding to uint8
levels or scoring floats, and the SSIM window. Nothing here is implicit:

* images are HW or HWC arrays holding values in ``[0, data_range]``; both images get the same
  treatment, in this order: clip -> quantize -> crop -> Y (BasicSR's order: ``tensor2img`` clamps
  and rounds, then the metric crops, then converts to Y);
* ``color_order`` says how the channels are ordered; it is used only for the Y conversion, but it
  is always checked, so a config cannot carry a typo that only bites when Y is switched on;
* the arithmetic is float64 whatever the input dtype.

Numbers do not depend on scikit-image; tests/test_metrics.py checks parity with it.
"""
import math

import numpy as np

from ppir.errors import ConfigError, DataError

COLOR_ORDERS = ("RGB", "BGR")
SSIM_WINDOWS = ("gaussian", "uniform", "matlab")
QUANTIZE_MODES = ("round", "truncate")  # `quantize: true` is 'round'

# ITU-R BT.601 luma with studio swing, as MATLAB's rgb2ycbcr computes it and BasicSR copies it
# (`rgb2ycbcr(img, y_only=True)` on [0,1] input): Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255.
_Y_WEIGHTS_RGB = np.array([65.481, 128.553, 24.966], dtype=np.float64) / 255.0
_Y_OFFSET = 16.0 / 255.0

_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_GAUSS_SIZE = 11
_GAUSS_SIGMA = 1.5
_UNIFORM_SIZE = 7


class MetricInputError(DataError, ValueError):
    """The two images cannot be scored together (shape, channels, size after cropping).

    Also a ValueError, so callers that predate ppir's error classes still catch it.
    """


class MetricOptionError(ConfigError, ValueError):
    """A metric option (color_order, crop_border, window, data_range) is not valid."""


def check_options(crop_border=0, test_y_channel=False, color_order="RGB", data_range=1.0,
                  quantize=False, clip=True, window=None):
    """Validate the protocol options; return them normalised (color_order upper-cased).

    Metric classes call this in their constructor so a bad config fails before evaluation starts.
    """
    if isinstance(color_order, str) and color_order.upper() in COLOR_ORDERS:
        color_order = color_order.upper()
    else:
        raise MetricOptionError(
            f"color_order must be one of {', '.join(COLOR_ORDERS)}, got {color_order!r}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) \
            or crop_border < 0:
        raise MetricOptionError(f"crop_border must be an int >= 0, got {crop_border!r}")
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float, np.number)) \
            or not data_range > 0 or not math.isfinite(data_range):
        raise MetricOptionError(f"data_range must be a positive number, got {data_range!r}")
    for key, value in (("test_y_channel", test_y_channel), ("clip", clip)):
        if not isinstance(value, (bool, np.bool_)):
            raise MetricOptionError(f"{key} must be true or false, got {value!r}")
    if isinstance(quantize, (bool, np.bool_)):
        quantize = bool(quantize)
    elif isinstance(quantize, str) and quantize in QUANTIZE_MODES:
        quantize = True if quantize == "round" else quantize
    else:
        raise MetricOptionError(f"quantize must be true or false, 'round' or 'truncate', "
                                f"got {quantize!r}")
    if window is not None and window not in SSIM_WINDOWS:
        raise MetricOptionError(
            f"window must be one of {', '.join(SSIM_WINDOWS)}, got {window!r}")
    return dict(crop_border=int(crop_border), test_y_channel=bool(test_y_channel),
                color_order=color_order, data_range=float(data_range),
                quantize=quantize, clip=bool(clip))


def to_y_channel(img, color_order="RGB", data_range=1.0):
    """BT.601 studio-swing luma (MATLAB rgb2ycbcr) of an HWC image in [0, data_range].

    Returns HW1 float64 in the same range convention, i.e. values in
    [16/255, 235/255] * data_range.
    """
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise MetricInputError(
            f"Y channel needs an HWC image with 3 channels, got shape {img.shape}")
    weights = _Y_WEIGHTS_RGB if color_order == "RGB" else _Y_WEIGHTS_RGB[::-1]
    y = (img / data_range) @ weights + _Y_OFFSET
    return (y * data_range)[..., None]


def _prepare(img, ref, crop_border, test_y_channel, color_order, data_range, quantize, clip,
             what):
    """Apply the shared protocol steps; return two float64 HWC arrays."""
    img = np.asarray(img)
    ref = np.asarray(ref)
    if img.shape != ref.shape:
        raise MetricInputError(f"{what}: image shape {img.shape} != reference shape {ref.shape}")
    if img.ndim == 2:
        img, ref = img[..., None], ref[..., None]
    elif img.ndim != 3:
        raise MetricInputError(f"{what}: expected an HW or HWC image, got shape {img.shape}")
    if img.size == 0:
        raise MetricInputError(f"{what}: empty image, shape {img.shape}")
    if test_y_channel and img.shape[2] != 3:
        raise MetricInputError(
            f"{what}: test_y_channel needs 3 channels (HWC), got shape {img.shape}")
    img = img.astype(np.float64)
    ref = ref.astype(np.float64)
    if clip or quantize:
        # Both official evaluations clamp the network output to the valid range before scoring
        # (MIRNetV2 test_real_denoising_sidd.py, MIMO-UNet eval.py); a no-op for in-range images.
        img = np.clip(img, 0.0, data_range)
        ref = np.clip(ref, 0.0, data_range)
    if quantize == "truncate":
        img, ref = _truncate(img, data_range), _truncate(ref, data_range)
    elif quantize:
        # BasicSR tensor2img: (x * 255).round() to uint8. np.round rounds halves to even, as
        # torch.round does. The values stay on the [0, data_range] scale, which leaves PSNR/SSIM
        # equal to BasicSR's uint8-scale numbers (both scale with data_range).
        img = np.round(img * (255.0 / data_range)) * (data_range / 255.0)
        ref = np.round(ref * (255.0 / data_range)) * (data_range / 255.0)
    if crop_border:
        h, w = img.shape[:2]
        if 2 * crop_border >= min(h, w):
            raise MetricInputError(
                f"{what}: crop_border={crop_border} leaves nothing of a {h}x{w} image")
        img = img[crop_border:-crop_border, crop_border:-crop_border]
        ref = ref[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel:
        img = to_y_channel(img, color_order, data_range)
        ref = to_y_channel(ref, color_order, data_range)
    return img, ref


def _truncate(img, data_range):
    """MISF's `(x.clamp(0, 1) * 255).numpy().astype(np.uint8)`: the product is taken in float32,
    as its torch code does, then cut towards zero; back on the [0, data_range] scale."""
    scaled = (img / data_range).astype(np.float32) * np.float32(255.0)
    return np.floor(scaled).astype(np.float64) * (data_range / 255.0)


def calculate_mae(img, ref, crop_border=0, test_y_channel=False, color_order="RGB",
                  data_range=1.0, quantize=False, clip=True):
    """Mean absolute error over all pixels and channels, divided by data_range (so on [0, 1]).

    MISF's "l1" (`F.l1_loss(composite, gt)` on [0, 1] floats) and ICT's "mae". Options as in
    :func:`calculate_psnr`; lower is better.
    """
    opts = check_options(crop_border, test_y_channel, color_order, data_range, quantize, clip)
    img, ref = _prepare(img, ref, what="MAE", **opts)
    return float(np.mean(np.abs(img - ref), dtype=np.float64) / opts["data_range"])


def calculate_psnr(img, ref, crop_border=0, test_y_channel=False, color_order="RGB",
                   data_range=1.0, quantize=False, clip=True):
    """PSNR in dB: ``10 * log10(data_range**2 / MSE)`` with the MSE over all pixels and channels.

    Args:
        img, ref: HW or HWC arrays (any real dtype) with values in [0, data_range].
        crop_border: pixels removed from each of the four borders before scoring.
        test_y_channel: score the BT.601 Y channel (MATLAB rgb2ycbcr) instead of all channels.
        color_order: 'RGB' or 'BGR', the channel order of both images.
        data_range: the peak value (1.0 for float images, 255 for uint8-scale arrays).
        quantize: round both images to the 256 uint8 levels first (True or 'round': BasicSR's
            tensor2img), or cut them towards zero ('truncate': MISF's `.astype(np.uint8)`).
        clip: clip both images to [0, data_range] first (the official evaluations clamp).

    Returns:
        float; ``inf`` when the images are identical (MSE == 0), as BasicSR and scikit-image do.
    """
    opts = check_options(crop_border, test_y_channel, color_order, data_range, quantize, clip)
    img, ref = _prepare(img, ref, what="PSNR", **opts)
    mse = np.mean((img - ref) ** 2, dtype=np.float64)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(opts["data_range"] ** 2 / mse))


def calculate_ssim(img, ref, crop_border=0, test_y_channel=False, color_order="RGB",
                   data_range=1.0, quantize=False, clip=True, window="gaussian"):
    """Mean SSIM (Wang et al. 2004; K1=0.01, K2=0.03) with one of three window conventions.

    * ``'gaussian'`` (BasicSR, Wang et al.'s ``ssim_index.m``): 11x11 Gaussian, sigma 1.5,
      population (biased) variances; the SSIM map is computed only where the window fits inside
      the image ('valid' filtering, i.e. 5 px less on each side) and averaged; channels are
      scored separately and averaged. Equal to scikit-image's
      ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``,
      which filters with reflect padding and then drops the same 5 px before averaging.
    * ``'uniform'`` (scikit-image's default): 7x7 box window, sample covariances (x 49/48),
      'valid' region (3 px less on each side), per channel then averaged.
    * ``'matlab'``: MATLAB ``ssim(A, ref)`` as documented (R2014a+): 11-tap Gaussian, sigma 1.5,
      replicate padding, mean over every pixel (no crop). MATLAB treats an HxWx3 array as a
      3-D volume unless given ``DataFormat='SSC'``, so for 3-channel input the window is an
      11x11x11 Gaussian across rows, columns and channels (replicate-padded along the channel
      axis too); a 1-channel image (or the Y channel) gets the 2-D window. Not checked against
      MATLAB itself (no MATLAB here); see docs/metrics.md.

    Other arguments as in :func:`calculate_psnr`. Images must be at least as large as the
    window after cropping ('gaussian': 11, 'uniform': 7).
    """
    opts = check_options(crop_border, test_y_channel, color_order, data_range, quantize, clip,
                         window=window)
    img, ref = _prepare(img, ref, what="SSIM", **opts)
    h, w, channels = img.shape
    min_size = _UNIFORM_SIZE if window == "uniform" else _GAUSS_SIZE
    if window != "matlab" and min(h, w) < min_size:
        raise MetricInputError(
            f"SSIM: a {h}x{w} image is smaller than the {min_size}x{min_size} '{window}' window")
    c1 = (_SSIM_K1 * opts["data_range"]) ** 2
    c2 = (_SSIM_K2 * opts["data_range"]) ** 2
    if window == "matlab":
        axes = (0, 1, 2) if channels > 1 else (0, 1)
        return _ssim_mean(img if channels > 1 else img[..., 0],
                          ref if channels > 1 else ref[..., 0],
                          _gaussian_kernel(), axes, "replicate", False, c1, c2)
    if window == "gaussian":
        kernel, sample_cov = _gaussian_kernel(), False
    else:
        kernel, sample_cov = np.full(_UNIFORM_SIZE, 1.0 / _UNIFORM_SIZE), True
    return float(np.mean([_ssim_mean(img[..., c], ref[..., c], kernel, (0, 1), "valid",
                                     sample_cov, c1, c2)
                          for c in range(channels)]))


def _gaussian_kernel(size=_GAUSS_SIZE, sigma=_GAUSS_SIGMA):
    """Normalised 1-D Gaussian taps; the same values as cv2.getGaussianKernel(11, 1.5),
    scipy's gaussian_filter(sigma=1.5, truncate=3.5) and MATLAB's fspecial/imgaussfilt."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return taps / taps.sum()


def _filter(x, kernel, axes, padding):
    """Separable correlation of `x` with the 1-D `kernel` along each of `axes`.

    padding 'valid' keeps only positions where the window fits; 'replicate' pads each axis
    with its edge values first, so the output has the input's shape.
    """
    radius = (kernel.size - 1) // 2
    for axis in axes:
        if padding == "replicate":
            pad = [(0, 0)] * x.ndim
            pad[axis] = (radius, radius)
            x = np.pad(x, pad, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(x, kernel.size, axis=axis)
        x = windows @ kernel
    return x


def _ssim_mean(x, y, kernel, axes, padding, sample_cov, c1, c2):
    """Mean of the SSIM map of two float64 arrays (2-D image or 3-D volume)."""
    mu_x = _filter(x, kernel, axes, padding)
    mu_y = _filter(y, kernel, axes, padding)
    var_x = _filter(x * x, kernel, axes, padding) - mu_x * mu_x
    var_y = _filter(y * y, kernel, axes, padding) - mu_y * mu_y
    cov_xy = _filter(x * y, kernel, axes, padding) - mu_x * mu_y
    if sample_cov:
        n = kernel.size ** len(axes)
        norm = n / (n - 1.0)
        var_x, var_y, cov_xy = var_x * norm, var_y * norm, cov_xy * norm
    ssim_map = ((2.0 * mu_x * mu_y + c1) * (2.0 * cov_xy + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    return float(np.mean(ssim_map, dtype=np.float64))
