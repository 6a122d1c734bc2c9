"""Frechet Inception Distance as pytorch-fid 0.3.0 computes it (`fid_score.py`).

FID compares two *sets* of images: the mean and covariance of their Inception pool3 features
(ppir/models/archs/inception_arch.py), as Gaussians,

    FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)).

`activation_statistics` and `frechet_distance` follow `calculate_activation_statistics` and
`calculate_frechet_distance` line for line: float64 statistics, `np.cov(rowvar=False)` (sample
covariance, ddof 1), scipy's `sqrtm`, the `eps * I` offset when the square root is not finite,
and the check that any imaginary part on the diagonal is below 1e-3.

`FIDSet` accumulates the features of predictions and ground truths image by image, with each
image's group (the inpainting hole-ratio bin), and gives the distance over all images and per
group. ppir ships no Inception weights; see docs/metrics.md for converting pytorch-fid's file.
"""
import hashlib
import warnings

import numpy as np
import paddle
from scipy import linalg

from ppir.metrics.inpainting import ALL
from ppir.metrics.psnr_ssim import MetricInputError


def activation_statistics(features):
    """(mean, covariance) of an N x D feature array, in float64 like pytorch-fid."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise MetricInputError(f"FID: features must be N x D, got shape {features.shape}")
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


def _sqrtm(matrix):
    # pytorch-fid calls sqrtm(..., disp=False)[0]; that is the same array as sqrtm(...), whose
    # `disp` SciPy deprecates. The singular/ill-conditioned warning is what the finiteness check
    # below handles, so it is silenced.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(matrix)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's `calculate_frechet_distance`: the squared Frechet distance of two Gaussians.

    If sqrt(S1 S2) is not finite (a singular product), `eps` is added to both diagonals and the
    root taken again, with a warning. A complex root whose diagonal has an imaginary part above
    1e-3 is refused (MetricInputError); otherwise its real part is used.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise MetricInputError(f"FID: statistics of different sizes: means {mu1.shape} and "
                               f"{mu2.shape}, covariances {sigma1.shape} and {sigma2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: singular product of covariances; adding {eps} to their diagonals")
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise MetricInputError(f"FID: imaginary component {np.max(np.abs(covmean.imag))} "
                                   f"in sqrt(S1 S2)")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def inception_features(net, images, dims=2048):
    """N x dims float32 features of HWC RGB [0, 1] images (numpy), one image at a time."""
    feats = []
    with paddle.no_grad():
        for img in images:
            arr = np.ascontiguousarray(np.asarray(img, np.float32).transpose(2, 0, 1)[None])
            feats.append(net(paddle.to_tensor(arr), dims).numpy())
    return np.concatenate(feats)


class FIDSet:
    """Features of (prediction, ground truth) pairs, gathered image by image, scored at the end.

    Ground-truth features are cached by image content, so scoring the inputs and then every
    validation's outputs against the same targets runs the Inception on each target once.
    """

    def __init__(self, net, dims=2048):
        self.net, self.dims = net, dims
        self._target_cache = {}
        self.reset()

    def reset(self):
        self._pred, self._gt, self._groups = [], [], []

    def add(self, pred, gt, group=None):
        key = hashlib.sha1(np.ascontiguousarray(gt, np.float32).tobytes()).hexdigest()
        if key not in self._target_cache:
            self._target_cache[key] = inception_features(self.net, [gt], self.dims)[0]
        self._gt.append(self._target_cache[key])
        self._pred.append(inception_features(self.net, [pred], self.dims)[0])
        self._groups.append(None if group is None else str(group))

    def compute(self):
        """{group: FID, ..., 'all': FID} (groups in order of first appearance). A set of fewer
        than two images has no covariance: its FID is NaN."""
        members = {}
        for index, group in enumerate(self._groups):
            if group is not None:
                members.setdefault(group, []).append(index)
        members[ALL] = list(range(len(self._groups)))
        pred, gt = np.asarray(self._pred), np.asarray(self._gt)
        return {group: self._distance(pred[idx], gt[idx]) if len(idx) > 1 else float("nan")
                for group, idx in members.items()}

    @staticmethod
    def _distance(pred, gt):
        return frechet_distance(*activation_statistics(pred), *activation_statistics(gt))
