"""Image-quality metrics as small configurable objects, looked up by name from `Eval.metrics`.

A config lists its paper's protocol explicitly, e.g.::

    Eval:
      metrics:
        - {name: PSNR, crop_border: 0, test_y_channel: false, color_order: RGB, quantize: false}
        - {name: SSIM, crop_border: 0, test_y_channel: false, color_order: RGB, quantize: false,
           window: gaussian}

and the evaluator calls ``metric(pred, gt) -> float`` per image (HWC float arrays in [0, 1]) and
averages. The functions doing the arithmetic live in :mod:`ppir.metrics.psnr_ssim`.
"""
from ppir.errors import ConfigError
from ppir.metrics.psnr_ssim import (COLOR_ORDERS, QUANTIZE_MODES, SSIM_WINDOWS,
                                    MetricInputError, MetricOptionError, calculate_mae,
                                    calculate_psnr, calculate_ssim, check_options, to_y_channel)
from ppir.registry import METRICS

__all__ = ["METRICS", "PSNR", "SSIM", "MAE", "LPIPS", "FID", "build_metrics", "calculate_psnr",
           "calculate_ssim", "calculate_mae", "check_options", "to_y_channel",
           "MetricInputError", "MetricOptionError", "COLOR_ORDERS", "QUANTIZE_MODES",
           "SSIM_WINDOWS"]


class _ImageMetric:
    """Shared option handling: the options are checked when the config is built, not per image."""

    default_name = None
    higher_is_better = True

    def __init__(self, crop_border=0, test_y_channel=False, color_order="RGB", quantize=False,
                 data_range=1.0, clip=True, label=None):
        self.options = check_options(crop_border, test_y_channel, color_order, data_range,
                                     quantize, clip)
        if label is not None and (not isinstance(label, str) or not label):
            raise MetricOptionError(f"label must be a non-empty string, got {label!r}")
        self._label = label

    @property
    def name(self):
        """Key used in logs and in the best-model record ('psnr', 'ssim', or the given label)."""
        return self._label or self.default_name

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({args})"


@METRICS.register("PSNR")
class PSNR(_ImageMetric):
    """PSNR in dB of one prediction against its ground truth; see calculate_psnr.

    Identical images give ``inf``; an average containing it is ``inf`` too.
    """

    default_name = "psnr"

    def __call__(self, pred, gt):
        return calculate_psnr(pred, gt, **self.options)


@METRICS.register("MAE")
class MAE(_ImageMetric):
    """Mean absolute error on the [0, 1] scale (MISF's l1, ICT's mae); see calculate_mae."""

    default_name = "mae"
    higher_is_better = False

    def __call__(self, pred, gt):
        return calculate_mae(pred, gt, **self.options)


@METRICS.register("SSIM")
class SSIM(_ImageMetric):
    """Mean SSIM of one prediction against its ground truth; see calculate_ssim for `window`."""

    default_name = "ssim"

    def __init__(self, crop_border=0, test_y_channel=False, color_order="RGB", quantize=False,
                 data_range=1.0, clip=True, window="gaussian", label=None):
        super().__init__(crop_border, test_y_channel, color_order, quantize, data_range, clip,
                         label)
        check_options(window=window)
        self.window = window

    def __call__(self, pred, gt):
        return calculate_ssim(pred, gt, window=self.window, **self.options)

    def __repr__(self):
        return f"{super().__repr__()[:-1]}, window={self.window!r})"


@METRICS.register("LPIPS")
class LPIPS:
    """LPIPS v0.1 distance (lower is better) with user-supplied weights; see ppir/metrics/lpips.py.

    `weights` is a torch `.pth` of `lpips.LPIPS(net=...).state_dict()` or a `.pdparams` with the
    same keys; images are RGB [0, 1], mapped to [-1, 1] before the network.
    """

    higher_is_better = False

    def __init__(self, weights, net="alex", label=None):
        from ppir.metrics.lpips import LPIPSNet, load_lpips_weights

        self.net = load_lpips_weights(LPIPSNet(net), weights)
        self.name = label or "lpips"

    def __call__(self, pred, gt):
        from ppir.metrics.lpips import lpips_distance

        return lpips_distance(self.net, pred, gt)


@METRICS.register("FID")
class FID:
    """Frechet Inception Distance (lower is better) with user-supplied weights; see
    ppir/metrics/fid.py.

    A set metric: it scores the whole evaluation set (and each `group`), not one image, so the
    evaluator feeds it with `add(pred, gt, group)` and reads `compute()` -> {group: value,
    'all': value}. `weights` is pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` or its
    `.pdparams` conversion; `dims` is pytorch-fid's `--dims` (2048 = pool3, the standard).
    """

    higher_is_better = False
    per_set = True

    def __init__(self, weights, dims=2048, label=None):
        from ppir.metrics.fid import FIDSet
        from ppir.models.archs.inception_arch import BLOCK_DIMS, load_fid_inception

        if dims not in BLOCK_DIMS:
            raise MetricOptionError(f"FID dims must be one of {', '.join(map(str, BLOCK_DIMS))},"
                                    f" got {dims!r}")
        self._set = FIDSet(load_fid_inception(weights, where="FID weights"), dims)
        self.name = label or "fid"

    def reset(self):
        self._set.reset()

    def add(self, pred, gt, group=None):
        self._set.add(pred, gt, group)

    def compute(self):
        return self._set.compute()


def build_metrics(cfgs, where="Eval.metrics"):
    """Build the list of metric objects from a config list; names must be unique.

    Two entries of the same metric (say RGB and Y PSNR) need different `label`s.
    """
    if cfgs is None:
        return []
    if not isinstance(cfgs, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of {{name: ...}} mappings, got {cfgs!r}")
    metrics = [METRICS.build(cfg, where=f"{where}[{i}]") for i, cfg in enumerate(cfgs)]
    names = [m.name for m in metrics]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where}: metric name(s) {', '.join(duplicates)} used twice; "
                          "give one of them a different 'label'")
    return metrics
