"""Losses, built by name from `Model.losses` entries: `{name: L1Loss, weight: 1.0}`.

Importing this package registers every loss in `LOSSES` (ppir/registry.py)."""
from ppir.losses import fft_loss  # noqa: F401
from ppir.losses import gan_loss  # noqa: F401
from ppir.losses import perceptual  # noqa: F401
from ppir.losses import pixel_loss  # noqa: F401
from ppir.registry import LOSSES

__all__ = ["LOSSES"]
