"""The training data stream as a pure function of the iteration number.

`ProgressiveSchedule` says which patch size and per-card batch size iteration `i` uses
(MIRNetV2's progressive learning; a single stage for everyone else). `IterationBatchSampler`
yields, for every iteration, the sample keys `(index, patch_size, seed)`: indices come from a
per-epoch permutation sharded across ranks, seeds from (run seed, iteration, position). Resuming
at iteration k only needs k; nothing about the sampler has to be saved.
"""
import bisect

import numpy as np
from paddle.io import BatchSampler

from ppir.errors import ConfigError


class ProgressiveSchedule:
    """Stage j covers iterations (sum(iters[:j]), sum(iters[:j+1])]; after the last stage it stays."""

    def __init__(self, iters, patch_sizes, batch_sizes):
        if not (len(iters) == len(patch_sizes) == len(batch_sizes)) or not iters:
            raise ConfigError("Train.progressive: iters, patch_sizes and batch_sizes need the same, "
                              f"non-zero length (got {len(iters)}, {len(patch_sizes)}, {len(batch_sizes)})")
        self.ends = list(np.cumsum(iters))
        self.patch_sizes = list(patch_sizes)
        self.batch_sizes = list(batch_sizes)

    @classmethod
    def constant(cls, patch_size, batch_size):
        return cls([1], [patch_size], [batch_size])

    def stage(self, iteration):
        return min(bisect.bisect_left(self.ends, iteration), len(self.ends) - 1)

    def at(self, iteration):
        """(patch_size, batch_size) used at 1-based `iteration`."""
        j = self.stage(iteration)
        return self.patch_sizes[j], self.batch_sizes[j]

    def samples_before(self, iteration):
        """How many samples one rank consumed in iterations 1 .. iteration-1."""
        done = iteration - 1
        starts = [0] + self.ends[:-1]
        ends = self.ends[:-1] + [max(done, self.ends[-1])]  # the last stage runs on
        return int(sum(max(0, min(end, done) - start) * bs
                       for start, end, bs in zip(starts, ends, self.batch_sizes)))


def derive_seed(*parts):
    """A 63-bit seed from integers, stable across processes and platforms."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint32)
               .astype(np.uint64).dot([1 << 31, 1]))


class IterationBatchSampler(BatchSampler):
    """Batches for iterations start_iter+1 .. total_iters of one rank."""

    def __init__(self, num_samples, schedule, total_iters, start_iter=0, seed=0,
                 rank=0, world_size=1, shuffle=True):
        self.num_samples = num_samples
        self.per_rank = num_samples // world_size
        if self.per_rank == 0:
            raise ConfigError(f"the training set has {num_samples} samples, fewer than the "
                              f"{world_size} processes")
        self.schedule = schedule
        self.total_iters = total_iters
        self.start_iter = start_iter
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle

    def __len__(self):
        return max(self.total_iters - self.start_iter, 0)

    def _epoch_order(self, epoch):
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng(derive_seed(self.seed, epoch, 7)).permutation(self.num_samples)

    def __iter__(self):
        position = self.schedule.samples_before(self.start_iter + 1)
        epoch, order = None, None
        for iteration in range(self.start_iter + 1, self.total_iters + 1):
            patch_size, batch_size = self.schedule.at(iteration)
            keys = []
            for k in range(batch_size):
                e, offset = divmod(position, self.per_rank)
                if e != epoch:
                    epoch, order = e, self._epoch_order(e)
                index = int(order[self.rank + self.world_size * offset])
                keys.append((index, patch_size, derive_seed(self.seed, iteration, self.rank, k)))
                position += 1
            yield keys
