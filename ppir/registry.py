"""Every registry of ppir, and the one small class behind them: names in configs map to classes,
and unknown arguments are refused.

This module is a leaf (it imports nothing from ppir but the errors), so any layer can register
into any registry without importing upward. A registry is filled by the package that assembles
its members, and looked up through that package, which imports them all first:

    registering                               looking up (populated)
    NETWORKS    ppir/models/archs/*_arch.py   ppir.models (build_network)
    MODELS      ppir/models/*_model.py        ppir.models (build_model)
    LOSSES      ppir/losses/*.py              ppir.losses
    METRICS     ppir/metrics/__init__.py      ppir.metrics (build_metrics)
    DATASETS    ppir/data/*_dataset.py        ppir.data (build_dataset)
    HOST_STEPS  ppir/data/edges.py, ict_data  ppir.data.host_steps (run_host_steps)
    SCHEDULERS  ppir/engine/lr_scheduler.py   ppir.engine.lr_scheduler
"""
import inspect

from ppir.errors import ConfigError


class Registry:
    """Maps a config `name` to a class or function registered with `@REGISTRY.register()`."""

    def __init__(self, kind):
        self.kind = kind
        self._items = {}

    def register(self, name=None):
        def decorator(obj):
            key = name or obj.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._items[key] = obj
            return obj

        return decorator

    def __contains__(self, name):
        return name in self._items

    def names(self):
        return sorted(self._items)

    def get(self, name):
        if name not in self._items:
            raise ConfigError(
                f"unknown {self.kind} '{name}'; known: {', '.join(self.names())}")
        return self._items[name]

    def build(self, cfg, where=None, **extra):
        """Build from a dict holding `name` plus constructor keywords.

        `where` names the config section in error messages (e.g. `Model.network`).
        """
        where = where or self.kind
        if not isinstance(cfg, dict) or "name" not in cfg:
            raise ConfigError(f"{where}: expected a mapping with a 'name' key, got {cfg!r}")
        kwargs = {k: v for k, v in cfg.items() if k != "name"}
        kwargs.update(extra)
        obj = self.get(cfg["name"])
        check_kwargs(obj, kwargs, f"{where} ({cfg['name']})")
        try:
            return obj(**kwargs)
        except (TypeError, ValueError) as exc:
            # A constructor refusing its arguments (e.g. channels not divisible by groups) is a
            # config problem: report it against the config section, in one line.
            raise ConfigError(f"{where} ({cfg['name']}): {exc}") from exc


def check_kwargs(obj, kwargs, where):
    """Raise ConfigError naming every keyword that `obj` does not accept."""
    params = inspect.signature(obj).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        accepted = ", ".join(n for n, p in params.items() if p.kind != p.VAR_POSITIONAL)
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; accepted: {accepted}")


NETWORKS = Registry("network")
MODELS = Registry("model")
LOSSES = Registry("loss")
METRICS = Registry("metric")
DATASETS = Registry("dataset")
HOST_STEPS = Registry("host step")
SCHEDULERS = Registry("lr scheduler")
