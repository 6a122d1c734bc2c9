"""Datasets and the loaders the trainer and evaluator use.

Importing this package registers every dataset in `DATASETS` and every host step in
`HOST_STEPS` (ppir/registry.py): `ppir.data.host_steps.run_host_steps` can rely on it, since a
package's modules always run after its __init__."""
import numpy as np

from ppir.data import edges, ict_data, inpainting_dataset, paired_dataset  # noqa: F401  (registers)
from ppir.data.transforms import Mixup
from ppir.registry import DATASETS


def build_dataset(cfg, where):
    return DATASETS.build(dict(cfg), where=where)


def build_schedule(train_cfg):
    from ppir.data.sampler import ProgressiveSchedule

    prog = train_cfg.get("progressive")
    if prog:
        return ProgressiveSchedule(prog["iters"], prog["patch_sizes"], prog["batch_sizes"])
    return ProgressiveSchedule.constant(train_cfg.get("patch_size"), train_cfg["batch_size"])


class TrainCollate:
    """Stack the samples of one iteration (every key the dataset returns, nothing dropped) and
    apply the optional batch mixup."""

    def __init__(self, mixup=None, seed=0):
        self.mixup = mixup
        self.seed = seed

    def __call__(self, samples):
        from ppir.data.sampler import derive_seed

        batch = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
        if self.mixup is not None:
            rng = np.random.default_rng(derive_seed(self.seed, int(samples[0]["seed"]), 11))
            batch["input"], batch["target"] = self.mixup(batch["input"], batch["target"], rng)
        return batch


def build_train_loader(cfg, start_iter, rank=0, world_size=1):
    """The training loader for iterations start_iter+1 .. Global.iters of this rank: dicts of
    numpy arrays, one per iteration (see ppir/data/loader.py for how failures surface)."""
    from ppir.data.loader import BatchLoader
    from ppir.data.sampler import IterationBatchSampler

    train_cfg, seed = cfg["Train"], cfg["Global"]["seed"]
    dataset = build_dataset(train_cfg["dataset"], "Train.dataset")
    sampler = IterationBatchSampler(len(dataset), build_schedule(train_cfg), cfg["Global"]["iters"],
                                    start_iter=start_iter, seed=seed, rank=rank, world_size=world_size)
    mixup = Mixup(**train_cfg["mixup"]) if train_cfg.get("mixup") else None
    return BatchLoader(dataset, sampler, TrainCollate(mixup, seed), num_workers=train_cfg["num_workers"])


def build_eval_dataset(cfg):
    return build_dataset(cfg["Eval"]["dataset"], "Eval.dataset")
