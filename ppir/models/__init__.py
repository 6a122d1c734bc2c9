"""Networks (`build_network`) and the task wrappers that train and serve them (`build_model`).

The registries live in ppir/registry.py; importing this package registers every network (the
archs subpackage), so `NETWORKS` and `MODELS` looked up from here are complete."""
from ppir.models import archs  # noqa: F401  (registers every network)
from ppir.registry import MODELS, NETWORKS

__all__ = ["NETWORKS", "MODELS", "build_network", "build_model"]


def build_network(cfg, where="Model.network"):
    """Build a network from `{"name": NAME, **official_kwargs}`."""
    return NETWORKS.build(dict(cfg), where=where)


def build_model(cfg):
    """Build the task wrapper named in `Model.name` (default RestorationModel) from a full config."""
    from ppir.models import ctsdg_model, ict_model, misf_model, restoration_model  # noqa: F401  (registers the task wrappers)

    model_cfg = dict(cfg["Model"] or {})
    model_cfg.setdefault("name", "RestorationModel")
    return MODELS.build(model_cfg, where="Model")
