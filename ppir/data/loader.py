"""The training data loader: batches in order, optional worker processes, failures end the run.

Why not `paddle.io.DataLoader`: when a sample cannot be loaded (a corrupt image, a bad crop) its
reader thread (num_workers=0) or worker process prints a traceback and the training loop waits
forever for the batch that never comes. Here every batch is produced by a plain function call,
either in the calling process or in a `ProcessPoolExecutor` (fork), with a bounded number of
batches in flight. An exception while loading comes back to the training loop as one
`DataError` naming the sample and its cause; a worker that dies (killed, out of memory) raises
`BrokenProcessPool` at once instead of hanging.

Batches are dicts of numpy arrays, in exactly the order the batch sampler yields the keys, so the
data stream stays a pure function of (seed, iteration, rank) whatever `num_workers` is.
"""
import collections
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ppir.errors import DataError, PpirError

# The dataset and collate function of the running loader, inherited by forked workers (not
# pickled: datasets may hold open files or large lists).
_WORKER_STATE = {}


def _describe(dataset, key):
    index = key[0] if isinstance(key, (tuple, list)) else key
    name = getattr(dataset, "name", None)
    try:
        return f"sample {index} ({name(int(index))})" if callable(name) else f"sample {index}"
    except Exception:  # naming is best effort; the cause below is what matters
        return f"sample {index}"


def load_batch(dataset, collate, keys):
    """Load and collate one batch; any failure becomes a DataError naming the sample."""
    samples = []
    for key in keys:
        try:
            samples.append(dataset[key])
        except PpirError as exc:
            raise DataError(f"cannot load {_describe(dataset, key)}: {exc}") from None
        except Exception as exc:  # a bug or an unexpected file: still one line, still the sample
            raise DataError(f"cannot load {_describe(dataset, key)}: "
                            f"{exc.__class__.__name__}: {exc}") from None
    try:
        return collate(samples)
    except PpirError:
        raise
    except Exception as exc:
        raise DataError(f"cannot collate a batch of {len(samples)} samples: "
                        f"{exc.__class__.__name__}: {exc}") from None


def _worker_load(keys):
    return load_batch(_WORKER_STATE["dataset"], _WORKER_STATE["collate"], keys)


class BatchLoader:
    """Iterate the batches of `batch_sampler` (lists of sample keys) through `dataset` + `collate`.

    With `num_workers > 0`, up to `prefetch` batches are loaded ahead in forked worker processes.
    """

    def __init__(self, dataset, batch_sampler, collate, num_workers=0, prefetch=None):
        self.dataset = dataset
        self.batch_sampler = batch_sampler
        self.collate = collate
        self.num_workers = int(num_workers)
        self.prefetch = prefetch or 2 * max(self.num_workers, 1)

    def __len__(self):
        return len(self.batch_sampler)

    def __iter__(self):
        if self.num_workers == 0:
            for keys in self.batch_sampler:
                yield load_batch(self.dataset, self.collate, keys)
            return
        yield from self._iter_workers()

    def _iter_workers(self):
        _WORKER_STATE.update(dataset=self.dataset, collate=self.collate)
        executor = ProcessPoolExecutor(self.num_workers, mp_context=multiprocessing.get_context("fork"))
        pending = collections.deque()
        keys_iter = iter(self.batch_sampler)
        try:
            for keys in keys_iter:
                pending.append(executor.submit(_worker_load, keys))
                if len(pending) >= self.prefetch:
                    yield self._result(pending.popleft())
            while pending:
                yield self._result(pending.popleft())
        finally:
            for future in pending:
                future.cancel()
            executor.shutdown(wait=False, cancel_futures=True)
            _WORKER_STATE.clear()

    @staticmethod
    def _result(future):
        try:
            return future.result()
        except BrokenProcessPool:
            raise DataError("a data loader worker process died (killed or out of memory); "
                            "try fewer Train.num_workers") from None
