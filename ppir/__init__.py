"""ppir: faithful PaddlePaddle reproductions of published image-restoration models."""
import os
import warnings

__version__ = "0.1.0"


def _configure_environment():
    """Defaults that must be in place before paddle is imported; an explicit setting always wins.

    * GLOG_minloglevel=2 hides Paddle's C++ INFO/WARNING spam ("New Executor is Running", ...).
    * OMP_NUM_THREADS=1 with MKL_NUM_THREADS=<cores per process>: on CPU, Paddle eager runs 2.5x
      slower with OMP threads > 1 (see docs/training.md); MKL threads give the speed.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    procs = int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1)
    os.environ.setdefault("MKL_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // procs)))
    warnings.filterwarnings("ignore", message="No ccache found")


_configure_environment()


def load(model, weights=None, **options):
    """`ppir.inference.load`: a trained model to call on images (see docs/api.md)."""
    from ppir.inference.api import load as _load

    return _load(model, weights, **options)
