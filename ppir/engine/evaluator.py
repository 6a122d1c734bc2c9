"""Score a model on the Eval dataset with the metrics (and protocol) its config names."""
import os
import sys
import time

import numpy as np
import paddle
from tqdm import tqdm

from ppir.data import build_eval_dataset
from ppir.data.image_io import write_image
from ppir.errors import ConfigError
from ppir.metrics import build_metrics
from ppir.metrics.inpainting import ALL, aggregate_by_group
from ppir.utils.ensemble import ensemble_forward


class Evaluator:
    """Whole images, one at a time, through `model.predict` (padding handled there).

    A sample is a dict of arrays: the model reads its inputs from it (`input`, and e.g. `mask`),
    the metrics compare the prediction with `target`. Samples that carry a `group` (inpainting:
    the hole-ratio bin) are also scored per group: `self.table` / `self.input_table` then hold
    {group: {metric: mean, count}, 'all': ...} (ppir.metrics.inpainting.aggregate_by_group).
    Set metrics (`per_set`, e.g. FID) are not averaged: they gather every image of a pass and
    give one value over all images and one per group.
    """

    def __init__(self, cfg, model, dataset=None):
        self.model = model
        self.dataset = build_eval_dataset(cfg) if dataset is None else dataset
        self.metrics = build_metrics(cfg["Eval"]["metrics"] or [{"name": "PSNR"}])
        self.clamp = cfg["Eval"]["clamp"]
        self._input_scores = None
        self.table = self.input_table = None

    def _score(self, pred, gt, group=None):
        row = {}
        for m in self.metrics:
            if getattr(m, "per_set", False):
                m.add(pred, gt, group)
            else:
                row[m.name] = m(pred, gt)
        return row

    def _set_metrics(self):
        return [m for m in self.metrics if getattr(m, "per_set", False)]

    def _forward(self, ensemble):
        def predict(sample):
            batch = {k: paddle.to_tensor(v[None]) for k, v in sample.items()
                     if isinstance(v, np.ndarray) and v.ndim == 3}
            return self.model.predict(batch).numpy()
        if ensemble:
            def predict_ensemble(sample):
                if set(k for k, v in sample.items() if isinstance(v, np.ndarray) and v.ndim == 3) != {"input", "target"}:
                    raise ConfigError("--ensemble works for models whose only input is the image")
                return ensemble_forward(lambda x: predict({"input": x[0]}), sample["input"][None])
            return predict_ensemble
        return predict

    def _summarise(self, rows, groups):
        """(overall means, per-group table or None)."""
        if not rows:
            return {}, None
        table = aggregate_by_group(rows, groups) if any(g is not None for g in groups) else None
        means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        for metric in self._set_metrics():
            values = metric.compute()
            metric.reset()
            means[metric.name] = values[ALL]
            for group, row in (table or {}).items():
                row[metric.name] = values[group]
        return means, table

    def input_scores(self):
        """The metrics of the degraded inputs themselves: the baseline a model has to beat."""
        if self._input_scores is None:
            rows, groups = [], []
            for metric in self._set_metrics():
                metric.reset()
            for i in range(len(self.dataset)):
                sample = self.dataset[i]
                groups.append(sample.get("group"))
                rows.append(self._score(sample["input"].transpose(1, 2, 0), sample["target"].transpose(1, 2, 0),
                                        groups[-1]))
            self._input_scores, self.input_table = self._summarise(rows, groups)
        return self._input_scores

    def run(self, save_dir=None, ensemble=False, progress=True):
        """Mean of every metric over the dataset, plus `runtime` (seconds per image)."""
        was_training = self.model.training
        self.model.set_train(False)
        forward = self._forward(ensemble)
        rows, groups, seconds = [], [], 0.0
        for metric in self._set_metrics():
            metric.reset()
        try:
            # No bar when stderr is a log file or a pipe: it would only interleave with the messages.
            bar = progress and sys.stderr.isatty()
            for i in tqdm(range(len(self.dataset)), desc="eval", disable=not bar, leave=False):
                sample = self.dataset[i]
                start = time.perf_counter()
                out = forward(sample)[0]
                seconds += time.perf_counter() - start
                pred = out.transpose(1, 2, 0)
                if self.clamp:
                    pred = np.clip(pred, 0.0, 1.0)
                groups.append(sample.get("group"))
                rows.append(self._score(pred, sample["target"].transpose(1, 2, 0), groups[-1]))
                if save_dir:
                    name = os.path.splitext(self.dataset.name(i))[0] + ".png"
                    write_image(os.path.join(save_dir, name), pred)
        finally:
            if was_training:
                self.model.set_train(True)
        result, self.table = self._summarise(rows, groups)
        result["runtime"] = seconds / max(len(rows), 1)
        return result


def format_scores(scores, prefix=""):
    return ", ".join(f"{prefix}{k}: {v:.4f}" for k, v in scores.items())
