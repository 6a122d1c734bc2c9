"""Score a model on the Eval dataset with the metrics (and protocol) its config names."""
import os
import sys
import time

import numpy as np
import paddle
from tqdm import tqdm

from ppir.data import build_eval_dataset
from ppir.data.image_io import write_image
from ppir.metrics import build_metrics
from ppir.utils.ensemble import ensemble_forward


class Evaluator:
    """Whole images, one at a time, through `model.predict` (padding handled there)."""

    def __init__(self, cfg, model):
        self.model = model
        self.dataset = build_eval_dataset(cfg)
        self.metrics = build_metrics(cfg["Eval"]["metrics"] or [{"name": "PSNR"}])
        self.clamp = cfg["Eval"]["clamp"]
        self._input_scores = None

    def _score(self, pred, gt):
        return {m.name: m(pred, gt) for m in self.metrics}

    def _forward(self, ensemble):
        def predict(batch):
            return self.model.predict(paddle.to_tensor(batch)).numpy()
        if ensemble:
            return lambda batch: ensemble_forward(predict, batch)
        return predict

    @staticmethod
    def _mean(rows):
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}

    def input_scores(self):
        """The metrics of the degraded inputs themselves: the baseline a model has to beat."""
        if self._input_scores is None:
            rows = []
            for i in range(len(self.dataset)):
                sample = self.dataset[i]
                rows.append(self._score(sample["input"].transpose(1, 2, 0), sample["target"].transpose(1, 2, 0)))
            self._input_scores = self._mean(rows)
        return self._input_scores

    def run(self, save_dir=None, ensemble=False, progress=True):
        """Mean of every metric over the dataset, plus `runtime` (seconds per image)."""
        was_training = self.model.net.training
        self.model.net.eval()
        forward = self._forward(ensemble)
        rows, seconds = [], 0.0
        try:
            # No bar when stderr is a log file or a pipe: it would only interleave with the messages.
            bar = progress and sys.stderr.isatty()
            for i in tqdm(range(len(self.dataset)), desc="eval", disable=not bar, leave=False):
                sample = self.dataset[i]
                start = time.perf_counter()
                out = forward(sample["input"][None])[0]
                seconds += time.perf_counter() - start
                pred = out.transpose(1, 2, 0)
                if self.clamp:
                    pred = np.clip(pred, 0.0, 1.0)
                rows.append(self._score(pred, sample["target"].transpose(1, 2, 0)))
                if save_dir:
                    name = os.path.splitext(self.dataset.name(i))[0] + ".png"
                    write_image(os.path.join(save_dir, name), pred)
        finally:
            if was_training:
                self.model.net.train()
        result = self._mean(rows)
        result["runtime"] = seconds / max(len(rows), 1)
        return result


def format_scores(scores, prefix=""):
    return ", ".join(f"{prefix}{k}: {v:.4f}" for k, v in scores.items())
