"""Crash-safe checkpoints.

A checkpoint is a directory `iter_N/` holding, for every network of the task model, its weights
and its optimizer + LR-scheduler state: `model.pdparams` / `model.pdopt` for the primary network
(official keys; what eval, export and `Global.pretrained_model` read), `<name>.pdparams` /
`<name>.pdopt` for the others (e.g. `discriminator.pdparams`); plus `state.pdstates` (iteration,
best metric, AMP scale, the resolved config) and, with EMA, `ema.pdparams`. It is written under a temporary name and renamed into place only when every
file is on disk, so a kill at any moment leaves the previous checkpoints intact. `latest` and
`best_model` are symbolic links, swapped atomically with os.replace.
"""
import os
import shutil

import paddle

from ppir.errors import CheckpointError
from ppir.utils.faults import fault_point

WEIGHTS = "model.pdparams"
OPTIMIZER = "model.pdopt"
STATE = "state.pdstates"
EMA = "ema.pdparams"
COMPLETE = "COMPLETE"


def weights_file(name, primary):
    """File name of network `name`'s weights in a checkpoint dir."""
    return WEIGHTS if name == primary else f"{name}.pdparams"


def optimizer_file(name, primary):
    return OPTIMIZER if name == primary else f"{name}.pdopt"


_STRUCTURED = "__ppir_structured_keys__"


def _rename_keys(state, mapping, split):
    """Rename every key (and the keys of nested dicts such as AMP master weights) by `split`."""
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            value = _rename_keys(value, mapping, split)
        out[split(key, mapping)] = value
    return out


def _to_structured(key, unique_to_path):
    for unique in sorted(unique_to_path, key=len, reverse=True):
        if key == unique:
            return unique_to_path[unique]
        if key.startswith(unique + "_"):
            return f"{unique_to_path[unique]}#{key[len(unique) + 1:]}"
    return key


def _to_unique(key, path_to_unique):
    path, sep, suffix = key.rpartition("#")
    if sep and path in path_to_unique:
        return f"{path_to_unique[path]}_{suffix}"
    return path_to_unique.get(key, key)


def portable_optimizer_state(state, net):
    """An optimizer state dict keyed by the network's parameter paths (`body.0.weight#moment1_0`)
    instead of Paddle's process-wide unique parameter names (`conv2d_952.w_0_moment1_0`), which
    depend on how many layers the process built before: a checkpoint then resumes whatever else
    was built first (another network, a loss network, an earlier run in the same process)."""
    unique_to_path = {p.name: path for path, p in net.named_parameters()}
    return dict(_rename_keys(state, unique_to_path, _to_structured), **{_STRUCTURED: True})


def restore_optimizer_state(state, net):
    """The inverse of `portable_optimizer_state` for `net` as built in this process (a state saved
    before ppir wrote portable keys is returned unchanged)."""
    if not state.pop(_STRUCTURED, False):
        return state
    path_to_unique = {path: p.name for path, p in net.named_parameters()}
    return _rename_keys(state, path_to_unique, _to_unique)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save(obj, path):
    paddle.save(obj, path)
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def is_complete(ckpt_dir):
    return os.path.isfile(os.path.join(ckpt_dir, COMPLETE))


def _point(link, target_name):
    tmp = f"{link}.tmp-{os.getpid()}"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(target_name, tmp)
    os.replace(tmp, link)


class CheckpointManager:
    """Writes `iter_N` checkpoints into `output_dir` and keeps the newest `keep_max` of them."""

    def __init__(self, output_dir, keep_max=3):
        self.output_dir = output_dir
        self.keep_max = keep_max
        self.fallback_note = None

    def path(self, name):
        return os.path.join(self.output_dir, name)

    def save(self, iteration, files, state=None):
        """Write iter_<iteration>/ atomically and point `latest` at it; return its path.

        `files` maps file names (`model.pdparams`, `discriminator.pdopt`, ...) to the objects to
        save; the state and the COMPLETE marker are written last. A failed write (full disk,
        read-only folder) leaves no temporary directory behind and raises CheckpointError
        naming the folder; the previous checkpoints stay as they were.
        """
        name = f"iter_{iteration}"
        final = self.path(name)
        tmp = self.path(f".tmp-{name}-{os.getpid()}")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            for i, (file, obj) in enumerate(files.items()):
                _save(obj, os.path.join(tmp, file))
                if i == 0:
                    fault_point(f"save:{iteration}:weights")
            _save(dict(state or {}, iter=iteration), os.path.join(tmp, STATE))
            with open(os.path.join(tmp, COMPLETE), "w") as f:
                f.write(f"{iteration}\n")
            _fsync_dir(tmp)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CheckpointError(f"cannot write checkpoint {name} in {self.output_dir}: "
                                  f"{exc.strerror or exc}; the previous checkpoints are intact") from None
        fault_point(f"save:{iteration}:renaming")
        if os.path.exists(final):  # saving the same iteration again (e.g. after a resume)
            old = self.path(f".old-{name}-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fault_point(f"save:{iteration}:linking")
        _point(self.path("latest"), name)
        _fsync_dir(self.output_dir)
        self.prune()
        return final

    def update_state(self, iteration, **values):
        """Rewrite fields of iter_<iteration>/state.pdstates atomically (e.g. the best metric found
        by the validation that ran after the checkpoint was saved)."""
        path = os.path.join(self.path(f"iter_{iteration}"), STATE)
        state = dict(paddle.load(path), **values)
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            _save(state, tmp)
            os.replace(tmp, path)
        except OSError as exc:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise CheckpointError(f"cannot update {path}: {exc.strerror or exc}") from None

    def mark_best(self, iteration):
        _point(self.path("best_model"), f"iter_{iteration}")
        _fsync_dir(self.output_dir)

    def _linked(self):
        names = set()
        for link in ("latest", "best_model"):
            if os.path.islink(self.path(link)):
                names.add(os.readlink(self.path(link)))
        return names

    def prune(self):
        """Delete old iter_N dirs beyond keep_max, never one that latest or best_model points to."""
        iters = sorted((int(d[5:]) for d in os.listdir(self.output_dir)
                        if d.startswith("iter_") and d[5:].isdigit()), reverse=True)
        keep = self._linked()
        for it in iters[self.keep_max:]:
            if f"iter_{it}" not in keep:
                shutil.rmtree(self.path(f"iter_{it}"), ignore_errors=True)
        for d in os.listdir(self.output_dir):  # leftovers of a save that was killed
            if d.startswith((".tmp-iter_", ".old-iter_")) and not d.endswith(f"-{os.getpid()}"):
                shutil.rmtree(self.path(d), ignore_errors=True)

    def complete_iterations(self):
        """Iterations of the complete iter_N checkpoints, newest first."""
        if not os.path.isdir(self.output_dir):
            return []
        return sorted((int(d[5:]) for d in os.listdir(self.output_dir)
                       if d.startswith("iter_") and d[5:].isdigit() and is_complete(self.path(d))),
                      reverse=True)

    def last_good(self):
        """The newest complete checkpoint whose evaluation (if one ran) gave no NaN score, or None.
        Its weights are finite: Trainer.save refuses non-finite weights."""
        for iteration in self.complete_iterations():
            path = self.path(f"iter_{iteration}")
            try:
                state = paddle.load(os.path.join(path, STATE))
            except Exception:  # an unreadable state is not a checkpoint to point a user at
                continue
            if isinstance(state, dict) and state.get("scores_finite", True):
                return path
        return None

    def latest(self):
        """The newest complete checkpoint dir, or None.

        `latest` normally names it. If that link is dangling or names an incomplete dir (its
        target deleted by hand, say), the newest complete iter_N is used instead and
        `self.fallback_note` says so.
        """
        self.fallback_note = None
        link = self.path("latest")
        if os.path.exists(link) and is_complete(link):
            return link
        done = self.complete_iterations()
        if not done:
            return None
        if os.path.lexists(link):
            target = os.readlink(link) if os.path.islink(link) else link
            self.fallback_note = (f"{link} points to {target}, which is missing or incomplete; "
                                  f"using the newest complete checkpoint iter_{done[0]}")
        return self.path(f"iter_{done[0]}")


def _weights_file(path):
    if os.path.isdir(path):
        if not is_complete(path):
            raise CheckpointError(f"checkpoint is incomplete (no {COMPLETE} marker): {path}")
        path = os.path.join(path, WEIGHTS)
    if not os.path.isfile(path):
        raise CheckpointError(f"weights file not found: {path}")
    return path


def load_state(path):
    """Load the network state dict of a .pdparams file or a checkpoint dir."""
    path = _weights_file(path)
    try:
        state = paddle.load(path)
    except Exception as exc:  # paddle raises assorted types for truncated or foreign files
        raise CheckpointError(f"cannot read weights {path}: {exc.__class__.__name__}: {exc}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict")
    return state


def check_state_dict(net, state, source):
    """Raise CheckpointError listing missing, unexpected and shape-mismatched keys."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {list(state[k].shape)} vs {list(own[k].shape)}" for k in own
              if k in state and list(state[k].shape) != list(own[k].shape)]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            shown = ", ".join(items[:6]) + (f", ... ({len(items)} in all)" if len(items) > 6 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(f"{source} does not fit {type(net).__name__}: " + "; ".join(problems))


def load_weights(net, path):
    """Load weights from a .pdparams file or a checkpoint dir, refusing any key/shape mismatch."""
    state = load_state(path)
    check_state_dict(net, state, path)
    net.set_state_dict(state)
    return path


def _load_file(path, what):
    try:
        return paddle.load(path)
    except Exception as exc:  # truncated or foreign files raise assorted types
        raise CheckpointError(f"cannot read the {what} {os.path.realpath(path)} (truncated or not a ppir checkpoint file): "
                              f"{exc.__class__.__name__}") from None


def load_checkpoint(ckpt_dir, networks=("net",), primary=None):
    """Read everything a resume needs from a checkpoint dir: per network (names in `networks`,
    `primary` saved as model.*) its weights and optimizer state, the training state and EMA.
    CheckpointError names a missing or bad file."""
    if not os.path.isdir(ckpt_dir):
        raise CheckpointError(f"checkpoint dir not found: {ckpt_dir}")
    if not is_complete(ckpt_dir):
        raise CheckpointError(f"checkpoint is incomplete (no {COMPLETE} marker): {ckpt_dir}")
    primary = primary or networks[0]
    state_file = os.path.join(ckpt_dir, STATE)
    if not os.path.isfile(state_file):
        raise CheckpointError(f"checkpoint has no {STATE}: {ckpt_dir}")
    out = {"state": _load_file(state_file, "training state"), "weights": {}, "optimizers": {}}
    if not isinstance(out["state"], dict) or "iter" not in out["state"]:
        raise CheckpointError(f"{state_file} holds no iteration; not a ppir checkpoint state")
    for name in networks:
        out["weights"][name] = load_state(os.path.join(ckpt_dir, weights_file(name, primary)))
        file = os.path.join(ckpt_dir, optimizer_file(name, primary))
        out["optimizers"][name] = _load_file(file, "optimizer state") if os.path.isfile(file) else None
    file = os.path.join(ckpt_dir, EMA)
    out["ema"] = _load_file(file, "EMA weights") if os.path.isfile(file) else None
    return out


def load_pretrained(model, spec):
    """`Global.pretrained_model` for a task model. A weights file loads the primary network; a
    checkpoint dir loads every network that has a weights file there (the primary must); a
    mapping {network: weights file} loads each named network. Returns the loaded names."""
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(model.networks))
        if unknown:
            raise CheckpointError(f"Global.pretrained_model names unknown network(s) {', '.join(unknown)}; "
                                  f"the model has {', '.join(model.networks)}")
        for name, path in spec.items():
            load_weights(model.networks[name], path)
        return list(spec)
    if not os.path.isdir(spec):
        load_weights(model.net, spec)
        return [model.primary]
    loaded = []
    for name, net in model.networks.items():
        file = os.path.join(spec, weights_file(name, model.primary))
        if name == model.primary or os.path.isfile(file):
            load_weights(net, spec if name == model.primary else file)
            loaded.append(name)
    return loaded


def build_trained_model(cfg):
    """The config's model with `Global.pretrained_model` loaded, in eval mode (eval/predict/export)."""
    from ppir.errors import ConfigError
    from ppir.models import build_model
    from ppir.utils.device import setup_device

    weights = cfg["Global"]["pretrained_model"]
    if not weights:
        raise ConfigError("set the weights with -o Global.pretrained_model=PATH "
                          "(a .pdparams file or a checkpoint dir)")
    setup_device(cfg["Global"]["device"])
    model = build_model(cfg)
    load_pretrained(model, weights)  # a checkpoint dir: every network (ICTModel predicts with three)
    model.set_train(False)
    return model
