"""PSNR/SSIM/MAE protocol options and parity with scikit-image on fixed image pairs."""
import warnings

import numpy as np
import pytest

from ppir.errors import ConfigError, DataError
from ppir.metrics import (MAE, METRICS, PSNR, SSIM, build_metrics, calculate_mae,
                          calculate_psnr, calculate_ssim, to_y_channel)

skimage_metrics = pytest.importorskip("skimage.metrics")
ndimage = pytest.importorskip("scipy.ndimage")


def _astronaut_pairs():
    """Three (degraded, reference) float64 pairs in [0, 1] cut from skimage's astronaut photo."""
    from skimage import data

    photo = data.astronaut().astype(np.float64) / 255.0
    rng = np.random.default_rng(2024)
    pairs = []
    for (y, x, h, w), sigma in (((40, 180, 48, 64), 0.02), ((200, 100, 64, 56), 0.08),
                                ((300, 300, 40, 40), 0.2)):
        ref = photo[y:y + h, x:x + w]
        img = np.clip(ref + rng.normal(0.0, sigma, ref.shape), 0.0, 1.0)
        pairs.append((img, ref))
    return pairs


PAIRS = _astronaut_pairs()


def test_psnr_matches_skimage():
    """PSNR equals skimage.metrics.peak_signal_noise_ratio to 1e-10 dB (float RGB, range 1)."""
    for img, ref in PAIRS:
        ours = calculate_psnr(img, ref)
        theirs = skimage_metrics.peak_signal_noise_ratio(ref, img, data_range=1.0)
        assert abs(ours - theirs) < 1e-10


def test_psnr_data_range_scales_out():
    """The same pair on a 0-255 scale with data_range=255 scores the same PSNR."""
    img, ref = PAIRS[0]
    assert calculate_psnr(img * 255, ref * 255, data_range=255) == pytest.approx(
        calculate_psnr(img, ref), abs=1e-10)


def test_ssim_uniform_matches_skimage_default():
    """window='uniform' equals skimage's default SSIM (7x7 box, sample covariance) to 1e-8."""
    for img, ref in PAIRS:
        ours = calculate_ssim(img, ref, window="uniform")
        theirs = skimage_metrics.structural_similarity(ref, img, channel_axis=-1, data_range=1.0)
        assert abs(ours - theirs) < 1e-8


def test_ssim_gaussian_matches_skimage_gaussian():
    """window='gaussian' (valid-region mean) equals skimage's gaussian_weights SSIM to 1e-8.

    skimage filters with reflect padding and then drops (11-1)/2 = 5 px on each side before the
    mean, which leaves exactly the positions where the window fits: the 'valid' region.
    """
    for img, ref in PAIRS:
        ours = calculate_ssim(img, ref, window="gaussian")
        theirs = skimage_metrics.structural_similarity(
            ref, img, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False)
        assert abs(ours - theirs) < 1e-8


def _ssim_by_hand(x, y, weights, c1, c2):
    """Wang et al.'s SSIM, one window position at a time, over the 'valid' positions."""
    k = weights.shape[0]
    values = []
    for i in range(x.shape[0] - k + 1):
        for j in range(x.shape[1] - k + 1):
            px, py = x[i:i + k, j:j + k], y[i:i + k, j:j + k]
            mx, my = (weights * px).sum(), (weights * py).sum()
            vx = (weights * (px - mx) ** 2).sum()
            vy = (weights * (py - my) ** 2).sum()
            cxy = (weights * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cxy + c2)
                          / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return np.mean(values)


def test_ssim_gaussian_matches_window_by_window_reference():
    """'gaussian' equals a per-window computation with the 2-D 11x11 sigma-1.5 Gaussian."""
    img, ref = PAIRS[2]
    img, ref = img[:20, :24], ref[:20, :24]
    taps = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    weights = np.outer(taps, taps) / np.outer(taps, taps).sum()
    by_hand = np.mean([_ssim_by_hand(img[..., c], ref[..., c], weights, 0.01 ** 2, 0.03 ** 2)
                       for c in range(3)])
    assert calculate_ssim(img, ref) == pytest.approx(by_hand, abs=1e-12)


def test_ssim_matlab_window_is_replicate_padded_volume():
    """window='matlab' = an 11-tap sigma-1.5 Gaussian with replicate padding over the whole
    HxWx3 array as one volume (MATLAB's default for 3-D input), mean over every voxel; for one
    channel the 2-D version. Reference: scipy's gaussian_filter with mode='nearest'."""
    img, ref = PAIRS[1]

    def blur(a):
        return ndimage.gaussian_filter(a, 1.5, mode="nearest", truncate=5 / 1.5)

    def reference(x, y):
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        return np.mean((2 * mx * my + c1) * (2 * cxy + c2)
                       / ((mx * mx + my * my + c1) * (vx + vy + c2)))

    assert calculate_ssim(img, ref, window="matlab") == pytest.approx(reference(img, ref),
                                                                      abs=1e-12)
    gray_img, gray_ref = img[..., 1], ref[..., 1]
    assert calculate_ssim(gray_img, gray_ref, window="matlab") == pytest.approx(
        reference(gray_img, gray_ref), abs=1e-12)
    # The volume window mixes channels, so it is a different number from the per-channel mean.
    assert abs(calculate_ssim(img, ref, window="matlab") - calculate_ssim(img, ref)) > 1e-3


def test_crop_border_equals_scoring_the_cropped_images():
    """crop_border=c removes c pixels on every side of both images before scoring."""
    img, ref = PAIRS[1]
    c = 4
    inner_img, inner_ref = img[c:-c, c:-c], ref[c:-c, c:-c]
    assert calculate_psnr(img, ref, crop_border=c) == calculate_psnr(inner_img, inner_ref)
    assert calculate_ssim(img, ref, crop_border=c) == calculate_ssim(inner_img, inner_ref)
    assert calculate_psnr(img, ref, crop_border=c) != calculate_psnr(img, ref)
    assert abs(calculate_psnr(img, ref, crop_border=c) - skimage_metrics.peak_signal_noise_ratio(
        inner_ref, inner_img, data_range=1.0)) < 1e-10


def test_y_channel_is_matlab_bt601_and_follows_color_order():
    """Y = (16 + 65.481 R + 128.553 G + 24.966 B)/255 (skimage rgb2ycbcr / MATLAB rgb2ycbcr);
    color_order='BGR' reads the channels reversed; Y-PSNR scores that single channel."""
    from skimage.color import rgb2ycbcr

    img, ref = PAIRS[0]
    y_img = to_y_channel(img, "RGB")
    assert y_img.shape == img.shape[:2] + (1,)
    np.testing.assert_allclose(y_img[..., 0], rgb2ycbcr(img)[..., 0] / 255.0, atol=1e-12)
    np.testing.assert_allclose(to_y_channel(img[..., ::-1], "BGR"), y_img, atol=1e-15)
    white, black = np.ones((1, 1, 3)), np.zeros((1, 1, 3))
    assert to_y_channel(white)[0, 0, 0] == pytest.approx(235 / 255, abs=1e-12)
    assert to_y_channel(black)[0, 0, 0] == pytest.approx(16 / 255, abs=1e-12)

    y_ref = to_y_channel(ref, "RGB")
    expected = skimage_metrics.peak_signal_noise_ratio(y_ref, y_img, data_range=1.0)
    assert calculate_psnr(img, ref, test_y_channel=True) == pytest.approx(expected, abs=1e-10)
    bgr = calculate_psnr(img[..., ::-1], ref[..., ::-1], test_y_channel=True, color_order="BGR")
    assert bgr == pytest.approx(expected, abs=1e-10)
    # Declaring BGR for RGB data gives a different (wrong) Y: the option matters.
    assert np.abs(to_y_channel(img, "BGR") - y_img).max() > 0.05
    assert calculate_ssim(img, ref, test_y_channel=True) == pytest.approx(
        calculate_ssim(y_img, y_ref), abs=1e-15)


def test_quantize_rounds_to_uint8_levels_like_basicsr():
    """quantize=True scores round(x * 255) levels (BasicSR tensor2img), equal to PSNR on the
    uint8 arrays with peak 255; identical images after rounding give inf."""
    img, ref = PAIRS[0]
    img_u8 = np.round(img * 255).astype(np.uint8)
    ref_u8 = np.round(ref * 255).astype(np.uint8)
    mse = np.mean((img_u8.astype(np.float64) - ref_u8.astype(np.float64)) ** 2)
    basicsr_style = 10 * np.log10(255.0 ** 2 / mse)
    assert calculate_psnr(img, ref, quantize=True) == pytest.approx(basicsr_style, abs=1e-10)
    assert calculate_psnr(img, ref, quantize=True) != calculate_psnr(img, ref)
    assert calculate_ssim(img, ref, quantize=True) == pytest.approx(
        calculate_ssim(img_u8, ref_u8, data_range=255), abs=1e-12)
    nudged = np.clip(ref + 0.4 / 255, 0, 1)  # less than half a level away everywhere
    assert calculate_psnr(nudged, ref, quantize=True) == float("inf")


def test_truncate_cuts_to_uint8_levels_like_misf():
    """quantize='truncate' reproduces MISF's metric (src/misf.py `metric`): clamp, x255 in
    float32, `.astype(np.uint8)` (truncation), then skimage PSNR (peak 255) and SSIM with its
    7x7 uniform defaults; it differs from rounding."""
    img, ref = (np.float32(a) for a in PAIRS[1])

    def misf_uint8(x):
        return (np.clip(x, 0, 1) * np.float32(255.0)).astype(np.uint8)

    gt_u8, pred_u8 = misf_uint8(ref), misf_uint8(img)
    psnr = skimage_metrics.peak_signal_noise_ratio(gt_u8, pred_u8)
    ssim = skimage_metrics.structural_similarity(gt_u8, pred_u8, channel_axis=-1, data_range=255)
    assert calculate_psnr(img, ref, quantize="truncate") == pytest.approx(psnr, abs=1e-10)
    assert calculate_ssim(img, ref, quantize="truncate", window="uniform") == pytest.approx(
        ssim, abs=1e-8)
    assert abs(calculate_psnr(img, ref, quantize="truncate")
               - calculate_psnr(img, ref, quantize="round")) > 1e-3
    assert calculate_psnr(img, ref, quantize="round") == calculate_psnr(img, ref, quantize=True)
    # 0.999/255 above a level: truncation keeps the level, rounding goes up.
    level = np.full((8, 8), 100 / 255 + 0.999 / 255)
    assert calculate_psnr(level, np.full((8, 8), 100 / 255), quantize="truncate") == float("inf")
    assert calculate_psnr(level, np.full((8, 8), 101 / 255), quantize="round") == float("inf")


def test_mae():
    """MAE is mean |pred - gt| over pixels and channels on the [0, 1] scale (data_range divides
    it out), with the shared clip/quantize options; lower is better; registered as 'MAE'."""
    img, ref = PAIRS[0]
    assert calculate_mae(img, ref) == pytest.approx(np.abs(img - ref).mean(), abs=1e-15)
    assert calculate_mae(img * 255, ref * 255, data_range=255) == pytest.approx(
        np.abs(img - ref).mean(), abs=1e-12)
    assert calculate_mae(ref + 0.5, ref, clip=False) == pytest.approx(0.5)
    assert calculate_mae(ref, ref) == 0.0
    mae = METRICS.build({"name": "MAE", "quantize": "truncate"})
    assert isinstance(mae, MAE) and mae.name == "mae" and not mae.higher_is_better
    assert mae(img, ref) == calculate_mae(img, ref, quantize="truncate")
    with pytest.raises(ValueError, match="shape"):
        calculate_mae(img, ref[:, :10])


def test_identical_images_give_inf_psnr_and_unit_ssim():
    """PSNR of identical images is +inf (no warning); SSIM is 1 for every window."""
    _, ref = PAIRS[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert calculate_psnr(ref, ref.copy()) == float("inf")
    for window in ("gaussian", "uniform", "matlab"):
        assert calculate_ssim(ref, ref, window=window) == pytest.approx(1.0, abs=1e-12)


def test_clip_limits_predictions_to_the_range():
    """By default both images are clipped to [0, data_range] (the official evaluations clamp
    the network output); clip=False scores the raw values."""
    _, ref = PAIRS[0]
    over = ref + 0.5
    assert calculate_psnr(over, ref) == calculate_psnr(np.clip(over, 0, 1), ref)
    assert calculate_psnr(over, ref, clip=False) < calculate_psnr(over, ref)


def test_grayscale_hw_input():
    """HW arrays are scored as one channel, equal to skimage on the same arrays."""
    img, ref = PAIRS[1][0][..., 0], PAIRS[1][1][..., 0]
    assert abs(calculate_psnr(img, ref) - skimage_metrics.peak_signal_noise_ratio(
        ref, img, data_range=1.0)) < 1e-10
    assert abs(calculate_ssim(img, ref, window="uniform") - skimage_metrics.structural_similarity(
        ref, img, data_range=1.0)) < 1e-8


@pytest.mark.parametrize("func", [calculate_psnr, calculate_ssim])
def test_bad_inputs_raise_one_clear_error(func):
    """Shape mismatch, bad color_order, Y on one channel, an over-large crop and bad options
    raise ValueError subclasses (also ppir DataError/ConfigError) that name the problem."""
    img, ref = PAIRS[0]
    with pytest.raises(ValueError, match=r"shape \(48, 64, 3\) != reference shape \(48, 60, 3\)"):
        func(img, ref[:, :60])
    with pytest.raises(DataError):
        func(img, ref[:, :60])
    with pytest.raises(ValueError, match="color_order must be one of RGB, BGR, got 'YUV'"):
        func(img, ref, color_order="YUV")
    with pytest.raises(ConfigError):
        func(img, ref, color_order="YUV")
    with pytest.raises(ValueError, match="test_y_channel needs 3 channels"):
        func(img[..., 0], ref[..., 0], test_y_channel=True)
    with pytest.raises(ValueError, match="crop_border=24 leaves nothing"):
        func(img, ref, crop_border=24)
    with pytest.raises(ValueError, match="crop_border must be an int"):
        func(img, ref, crop_border=-1)
    with pytest.raises(ValueError, match="data_range must be a positive number"):
        func(img, ref, data_range=0)
    with pytest.raises(ValueError, match="quantize must be true or false"):
        func(img, ref, quantize="yes")
    with pytest.raises(ValueError, match="expected an HW or HWC image"):
        func(img[None], ref[None])


def test_ssim_window_checks():
    """An unknown window name, or an image smaller than the window, is refused."""
    img, ref = PAIRS[0]
    with pytest.raises(ValueError, match="window must be one of gaussian, uniform, matlab"):
        calculate_ssim(img, ref, window="box")
    with pytest.raises(ValueError, match="smaller than the 11x11 'gaussian' window"):
        calculate_ssim(img[:10, :10], ref[:10, :10])
    assert np.isfinite(calculate_ssim(img[:7, :7], ref[:7, :7], window="uniform"))


def test_metric_classes_from_config():
    """Eval.metrics entries build PSNR/SSIM objects by name; calling them equals the functions,
    `name` is 'psnr'/'ssim', and unknown keys or bad values fail when the config is built."""
    img, ref = PAIRS[1]
    psnr, ssim = build_metrics([
        {"name": "PSNR", "crop_border": 0, "test_y_channel": False, "color_order": "RGB",
         "quantize": False},
        {"name": "SSIM", "crop_border": 2, "test_y_channel": True, "color_order": "rgb",
         "quantize": True, "window": "uniform"},
    ])
    assert isinstance(psnr, PSNR) and isinstance(ssim, SSIM)
    assert (psnr.name, ssim.name) == ("psnr", "ssim")
    assert psnr.higher_is_better and ssim.higher_is_better
    assert psnr(img, ref) == calculate_psnr(img, ref)
    assert ssim(img, ref) == calculate_ssim(img, ref, crop_border=2, test_y_channel=True,
                                            quantize=True, window="uniform")
    assert "window='uniform'" in repr(ssim) and "color_order='RGB'" in repr(ssim)
    assert METRICS.get("PSNR") is PSNR
    with pytest.raises(ConfigError, match="unknown key"):
        METRICS.build({"name": "PSNR", "input_order": "HWC"})
    with pytest.raises(ConfigError, match="color_order"):
        METRICS.build({"name": "PSNR", "color_order": "BRG"})
    with pytest.raises(ConfigError, match="window"):
        METRICS.build({"name": "SSIM", "window": "box"})


def test_build_metrics_names_must_be_unique():
    """Two entries of one metric need distinct labels, so logs never mix two protocols."""
    with pytest.raises(ConfigError, match="psnr used twice"):
        build_metrics([{"name": "PSNR"}, {"name": "PSNR", "test_y_channel": True}])
    metrics = build_metrics([{"name": "PSNR"}, {"name": "PSNR", "test_y_channel": True,
                                                 "label": "psnr_y"}])
    assert [m.name for m in metrics] == ["psnr", "psnr_y"]
    assert build_metrics(None) == []
