"""One small registry class: names in configs map to classes, and unknown arguments are refused."""
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
