"""Every file and folder a config tells ppir to read, named by its config key.

Output guards (ppir.utils.paths.refuse_overlap) compare what a run writes against this list, so
it is taken from the config itself, before any dataset is built: roots, image sub-folders, mask
roots, pair lists and palettes of Train and Eval (nested datasets such as ICTPriorDataset's
included), the demo datasets' cache folders, the model's palette and the pretrained weights.
"""
import os

__all__ = ["config_reads", "dataset_reads", "weights_reads"]

# Dataset keys whose string value is a path (pairs and image_dir may be relative to root).
_PATH_KEYS = ("root", "mask_root", "image_dir", "pairs", "palette")
_RELATIVE_TO_ROOT = ("image_dir", "pairs")
_DEMO_KINDS = {"DemoInpaintingDataset": lambda spec: "inpaint", "DemoPairedDataset": lambda spec: spec.get("kind")}


def dataset_reads(spec, where):
    """(path, config key) pairs of one dataset spec, nested specs included."""
    if not isinstance(spec, dict):
        return []
    from ppir.data.demo import KINDS, default_demo_root

    reads = []
    root = spec.get("root")
    kind = _DEMO_KINDS.get(spec.get("name"), lambda s: None)(spec)
    if not root and kind in KINDS:  # an unknown kind is reported by the dataset itself
        root = default_demo_root(kind)
        reads.append((root, f"{where}.root (demo cache)"))
    for key in _PATH_KEYS:
        value = spec.get(key)
        if isinstance(value, str) and value:
            reads.append((value, f"{where}.{key}"))
            if key in _RELATIVE_TO_ROOT and isinstance(root, str) and not os.path.isabs(value):
                reads.append((os.path.join(root, value), f"{where}.{key}"))
        elif isinstance(value, dict):  # a palette recipe: {images: FOLDER|demo, ...}
            reads += _palette_reads(value, f"{where}.{key}")
    reads += dataset_reads(spec.get("dataset"), f"{where}.dataset")
    return reads


def _palette_reads(recipe, where):
    folder = recipe.get("images")
    if folder == "demo":
        from ppir.data.demo import default_demo_root

        return [(default_demo_root("inpaint"), f"{where}.images (demo cache)")]
    return [(folder, f"{where}.images")] if isinstance(folder, str) and folder else []


def weights_reads(spec, where="Global.pretrained_model"):
    """Global.pretrained_model: a file, a checkpoint folder or {network: file}."""
    if isinstance(spec, dict):
        return [(path, f"{where}.{name}") for name, path in spec.items() if isinstance(path, str)]
    return [(spec, where)] if isinstance(spec, str) and spec else []


def config_reads(cfg, config_file=None):
    """Everything `cfg` reads: its datasets (Train and Eval), the model's palette, the weights and
    the config file itself."""
    reads = [(config_file, "-c")] if config_file else []
    for section in ("Train", "Eval"):
        reads += dataset_reads((cfg.get(section) or {}).get("dataset"), f"{section}.dataset")
    palette = (cfg.get("Model") or {}).get("palette")
    if isinstance(palette, str):
        reads.append((palette, "Model.palette"))
    elif isinstance(palette, dict):
        reads += _palette_reads(palette, "Model.palette")
    reads += weights_reads((cfg.get("Global") or {}).get("pretrained_model"))
    return reads
