"""Networks (`build_network`) and the task wrappers that train and serve them (`build_model`)."""
from ppir.registry import Registry

NETWORKS = Registry("network")
MODELS = Registry("model")

from ppir.models import archs  # noqa: E402,F401  (registers every network)


def build_network(cfg, where="Model.network"):
    """Build a network from `{"name": NAME, **official_kwargs}`."""
    return NETWORKS.build(dict(cfg), where=where)


def build_model(cfg):
    """Build the task wrapper named in `Model.name` (default RestorationModel) from a full config."""
    from ppir.models import ctsdg_model, ict_model, misf_model, restoration_model  # noqa: F401  (registers the task wrappers)

    model_cfg = dict(cfg["Model"] or {})
    model_cfg.setdefault("name", "RestorationModel")
    return MODELS.build(model_cfg, where="Model")
