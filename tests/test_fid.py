"""FID: the Inception port and the distance against pytorch-fid 0.3.0, on seeded weights."""
import json
import os

import numpy as np
import paddle
import pytest

from ppir.engine.evaluator import Evaluator
from ppir.errors import CheckpointError, ConfigError
from ppir.metrics import METRICS
from ppir.metrics import fid as fid_module
from ppir.metrics.fid import (FIDSet, activation_statistics, frechet_distance,
                              inception_features)
from ppir.metrics.inpainting import write_table_json
from ppir.models.archs.inception_arch import FIDInceptionV3
from ppir.models.convert import convert_state_dict

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "fid_seeded.npz")


def seeded_release_state(keys, shapes, seed=0):
    """The fixture's weights, keyed like pytorch-fid's released file: every tensor in key order
    from one np.random.RandomState(seed) stream (He-scaled convs, BatchNorm scales near 1 and
    variances >= 1, small biases and means; `num_batches_tracked` 0, no draw)."""
    rng = np.random.RandomState(seed)
    state = {}
    for key, shape in zip(keys, shapes):
        shape = tuple(int(s) for s in shape.split(",")) if shape else ()
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(0, np.int64)
            continue
        z = rng.standard_normal(shape)
        if len(shape) == 4:
            value = z * np.sqrt(2.0 / np.prod(shape[1:]))
        elif len(shape) == 2:
            value = z * np.sqrt(1.0 / shape[1])
        elif key.endswith("running_var"):
            value = 1.0 + 0.1 * np.abs(z)
        elif key.endswith("bn.weight"):
            value = 1.0 + 0.1 * z
        else:
            value = 0.1 * z
        state[key] = value.astype(np.float32)
    return state


@pytest.fixture(scope="module")
def data():
    return np.load(FIXTURE)


@pytest.fixture(scope="module")
def seeded_state(data):
    """Converted like tools/convert_weights.py --arch FIDInceptionV3 converts the release."""
    release = seeded_release_state([str(k) for k in data["torch_keys"]],
                                   [str(s) for s in data["torch_shapes"]])
    return convert_state_dict("FIDInceptionV3", release)


@pytest.fixture(scope="module")
def net(seeded_state):
    model = FIDInceptionV3()
    model.set_state_dict(seeded_state)
    return model


def test_keys_are_the_released_files_minus_the_classifier(data, seeded_state):
    """The port's state dict is pytorch-fid's `fid_inception_v3()` state dict (the released
    file's keys) in the same order, BatchNorm buffers renamed, `num_batches_tracked` and the
    1008-way `fc` dropped; 21,785,568 learned values plus 34,432 BatchNorm statistics."""
    expected = [str(k).replace("running_mean", "_mean").replace("running_var", "_variance")
                for k in data["torch_keys"]
                if not str(k).endswith("num_batches_tracked") and not str(k).startswith("fc.")]
    assert list(FIDInceptionV3().state_dict()) == expected == list(seeded_state)
    stats = sum(v.size for k, v in seeded_state.items() if k.endswith(("_mean", "_variance")))
    learned = sum(v.size for v in seeded_state.values()) - stats
    assert (learned, stats) == (21785568, 34432)


@pytest.mark.parametrize("dims", [64, 192, 2048])
def test_features_match_pytorch_fid(data, net, dims):
    """uint8 images read as pytorch-fid reads PNGs (/255), three 40x48 (upsampled to 299) and one
    320x304 (downsampled): features of `InceptionV3([block])` after `get_activations`' spatial
    mean, mean abs diff <= 1e-5 (measured: ~5e-8 at 2048, ~3e-7 at 64/192)."""
    ours = [net(paddle.to_tensor(data[name].astype(np.float32) / 255.0), dims).numpy()
            for name in ("small", "large")]
    diff = np.abs(np.concatenate(ours) - data[f"features_{dims}"])
    assert diff.mean() <= 1e-5 and diff.max() <= 1e-4, (diff.mean(), diff.max())


def fid_rounding_bound(mu1, s1, mu2, s2):
    """How far two correct float64 evaluations of the FID may differ, from the conditioning of
    sqrt(S1 S2) rather than from one machine's BLAS. A backward-stable product and Schur root
    perturb P = S1 S2 by about delta = n u ||P||; an eigenvalue lambda of P then moves by delta
    and its root by delta / (2 sqrt(lambda)), or by sqrt(delta) when lambda itself is at the
    rounding level (a singular pair: its null eigenvalues come out as +-delta, whose roots differ
    by sqrt(delta) from one CPU to another). FID holds -2 tr sqrt(P), plus sums of n terms."""
    p = s1 @ s2
    n, u = p.shape[0], np.finfo(np.float64).eps
    delta = n * u * np.linalg.norm(p, 2)
    lam = np.abs(np.linalg.eigvals(p))
    roots = np.where(lam > delta, delta / (2 * np.sqrt(np.maximum(lam, delta))), np.sqrt(delta))
    terms = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) + 2 * np.sum(np.sqrt(lam))
    return 2 * (2 * roots.sum() + n * u * terms)  # both ours and the stored value may be off


def test_frechet_distance_matches_pytorch_fid(data):
    """`calculate_frechet_distance` of pytorch-fid on the statistics of small feature sets: a
    well-conditioned pair (40 and 50 samples of 12 dims), a singular pair (6 and 7 samples of 10
    dims) and the 64-d Inception features of the fixture images split 2 / 2, each within the
    rounding bound of its own conditioning (the singular pair: ~1e-6 absolute; an AVX-512 CPU
    gives 16.2982538195 against the stored 16.2982537757)."""
    for a, b, key in ((data["set_a"], data["set_b"], "fid_ab"), (data["set_c"], data["set_d"], "fid_cd"),
                      (data["features_64"][:2], data["features_64"][2:], "fid_features")):
        stats = activation_statistics(a) + activation_statistics(b)
        bound = fid_rounding_bound(*stats)
        assert abs(frechet_distance(*stats) - float(data[key])) <= bound, (key, bound)
        assert bound < 1e-3 * float(data[key])  # the bound stays a test, not a blank cheque
    assert frechet_distance(*activation_statistics(data["set_a"]) * 2) == pytest.approx(0.0, abs=1e-9)


def test_statistics_use_the_sample_covariance():
    """Covariance with ddof 1 (np.cov), in float64 whatever the feature dtype."""
    feats = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]], np.float32)
    mu, sigma = activation_statistics(feats)
    assert mu.dtype == sigma.dtype == np.float64
    assert sigma[0, 0] == pytest.approx(4.0) and sigma[1, 1] == pytest.approx(3.0)


def test_singular_product_retries_with_eps_and_imaginary_roots_fail(monkeypatch):
    """A non-finite sqrt(S1 S2) is taken again on (S1 + eps I)(S2 + eps I), with a warning; a
    root whose diagonal has an imaginary part above 1e-3 is refused in one line."""
    real_sqrtm, calls = fid_module._sqrtm, []

    def first_call_fails(matrix):
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(fid_module, "_sqrtm", first_call_fails)
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    with pytest.warns(UserWarning, match="adding 0.5 to their diagonals"):
        value = frechet_distance(np.zeros(2), s1, np.ones(2), s2, eps=0.5)
    np.testing.assert_allclose(calls[1], (s1 + 0.5 * np.eye(2)) @ (s2 + 0.5 * np.eye(2)))
    assert value == pytest.approx(2 + 15 - 2 * (np.sqrt(1.5 * 9.5) + np.sqrt(4.5 * 1.5)))
    monkeypatch.setattr(fid_module, "_sqrtm", lambda m: np.eye(2) * (1 + 0.1j))
    with pytest.raises(ValueError, match="FID: imaginary component 0.1"):
        frechet_distance(np.zeros(2), s1, np.zeros(2), s2)


class _Dataset:
    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


class _NoisyModel:
    """Returns the target plus slight noise: closer to the targets than the holed inputs."""

    training = False

    def set_train(self, training):
        pass

    def predict(self, batch):
        noise = np.random.default_rng(0).normal(0, 0.02, batch["target"].shape)
        return paddle.to_tensor(np.clip(batch["target"].numpy() + noise, 0, 1).astype(np.float32))


def test_evaluator_reports_fid_overall_and_per_group(tmp_path, seeded_state):
    """`{name: FID, weights, dims}` in Eval.metrics (a .pdparams of the converted weights) gives
    one distance over the whole pass and one per group, next to the per-image means; the value
    is the distance of the gathered features; outputs near the targets score below the holed
    inputs; a second pass starts from an empty set."""
    path = str(tmp_path / "fid.pdparams")
    paddle.save({k: paddle.to_tensor(v) for k, v in seeded_state.items()}, path)
    rng = np.random.default_rng(3)
    samples = []
    for i in range(6):
        target = rng.uniform(0, 1, (3, 24, 24)).astype(np.float32)
        mask = np.zeros((1, 24, 24), np.float32)
        mask[:, 4:16, 4:16] = 1
        samples.append({"input": target * (1 - mask), "mask": mask, "target": target,
                        "group": "0%-20%" if i < 3 else "20%-40%"})
    evaluator = Evaluator.__new__(Evaluator)
    evaluator.model, evaluator.dataset, evaluator.clamp = _NoisyModel(), _Dataset(samples), True
    evaluator.metrics = [METRICS.build({"name": "MAE"}),
                         METRICS.build({"name": "FID", "weights": path, "dims": 64})]
    evaluator._input_scores, evaluator.table = None, None
    scores = evaluator.run(progress=False)
    assert list(evaluator.table["20%-40%"]) == ["mae", "count", "fid"]
    fid_set = FIDSet(evaluator.metrics[1]._set.net, dims=64)
    targets = [s["target"].transpose(1, 2, 0) for s in samples[3:]]
    preds = [_NoisyModel().predict({"target": paddle.to_tensor(s["target"][None])}).numpy()[0]
             .transpose(1, 2, 0) for s in samples[3:]]
    expected = fid_set._distance(inception_features(fid_set.net, preds, 64),
                                 inception_features(fid_set.net, targets, 64))
    assert evaluator.table["20%-40%"]["fid"] == pytest.approx(expected, rel=1e-6)
    assert scores["fid"] == evaluator.table["all"]["fid"]
    assert scores["fid"] < evaluator.input_scores()["fid"]
    assert evaluator.run(progress=False)["fid"] == pytest.approx(scores["fid"], rel=1e-9)


def test_group_of_one_image_has_nan_fid(tmp_path):
    """A group with a single image has no covariance: its FID is NaN (written as "nan" in the
    JSON table) while the other groups and 'all' are scored; `reset` empties the set."""
    class Features:  # stands in for the Inception: the image's channel means as features
        def __call__(self, x, dims):
            return x.mean(axis=[2, 3])

    fids = FIDSet(Features(), dims=3)
    rng = np.random.default_rng(0)
    for group in ["a", "a", "a", "b"]:
        gt = rng.uniform(0, 1, (8, 8, 3))
        fids.add(np.clip(gt + 0.1, 0, 1), gt, group)
    values = fids.compute()
    assert list(values) == ["a", "b", "all"] and np.isnan(values["b"])
    assert values["a"] > 0 and values["all"] > 0
    path = write_table_json(str(tmp_path / "t.json"), {g: {"fid": v} for g, v in values.items()})
    assert json.load(open(path))["b"]["fid"] == "nan"
    fids.reset()
    assert np.isnan(fids.compute()["all"])


def test_missing_weights_and_bad_options_fail_in_one_line(tmp_path):
    """No weights file: a CheckpointError naming the file and the conversion command; an
    unsupported `dims` or a file of another network is refused when the metric is built."""
    with pytest.raises(CheckpointError, match=r"not found: /no/fid\.pdparams \(convert "
                                              r"pytorch-fid's pt_inception-2015-12-05"):
        METRICS.build({"name": "FID", "weights": "/no/fid.pdparams"})
    with pytest.raises(ConfigError, match="dims must be one of 64, 192, 768, 2048"):
        METRICS.build({"name": "FID", "weights": "x.pth", "dims": 1000})
    other = str(tmp_path / "other.pdparams")
    paddle.save({"conv.weight": paddle.zeros([1])}, other)
    with pytest.raises(CheckpointError, match="other.pdparams: .*missing: Conv2d_1a_3x3"):
        METRICS.build({"name": "FID", "weights": other})
