"""Network architectures, one file per paper. Importing a module registers its networks."""
from ppir.models.archs import mirnet_v2_arch  # noqa: F401
from ppir.models.archs import mimounet_arch  # noqa: F401
from ppir.models.archs import misf_arch  # noqa: F401
from ppir.models.archs import ict_arch  # noqa: F401
from ppir.models.archs import ctsdg_arch  # noqa: F401
from ppir.losses import vgg  # noqa: F401,E402  (VGG16 / VGG19 features, for conversion)
from ppir.metrics import fid_inception  # noqa: F401,E402  (FIDInceptionV3, for conversion)
