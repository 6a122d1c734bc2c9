"""Network architectures, one file per paper, and the frozen feature networks that losses and
metrics use (VGG, FID's Inception). Importing a module registers its networks."""
from ppir.models.archs import mirnet_v2_arch  # noqa: F401
from ppir.models.archs import mimounet_arch  # noqa: F401
from ppir.models.archs import misf_arch  # noqa: F401
from ppir.models.archs import ict_arch  # noqa: F401
from ppir.models.archs import ctsdg_arch  # noqa: F401
from ppir.models.archs import vgg_arch  # noqa: F401  (VGG16 / VGG19 features: perceptual and style losses)
from ppir.models.archs import inception_arch  # noqa: F401  (FIDInceptionV3: the FID metric)
