"""ppir's Python API: a trained model behind one call.

    import ppir
    model = ppir.load("inference/misf_celeba")          # an export folder (tools/export.py)
    out = model("photo.png", mask="hole.png")            # HxWx3 uint8 RGB, the input's size
    outs = ppir.load("inference/ict")(img, mask=m, n_samples=4, seed=0)   # ICT: a list
    clean = ppir.load("configs/mirnetv2_sidd.yml", "best_model")(noisy)  # dygraph, no export

Images come in as paths or arrays of any size (HxWx3 uint8 RGB, also uint16, float [0, 1], gray
or opaque RGBA); masks as paths or arrays (bool, 0/1, 0/255, 16-bit; `mask_hole_value` says
whether white or black is the hole). Each model pads to its multiple (and tiny images up to a
minimum side) and crops back, tiles when the export or the caller asks, runs the fastest
verified path unless told otherwise, and raises only ppir errors (`ppir.errors.PpirError`), one
sentence each.
"""
import abc
import os
import re
import time

import numpy as np

from ppir.errors import ConfigError, DataError, ExportError, PpirError
from ppir.inference import host
from ppir.inference import spec as specs
from ppir.inference.ict import (GraphLogits, GraphUpsampler, TRANSFORMER_INPUTS, UPSAMPLER_INPUTS, complete,
                                graph_records, load_palette_of, stage_inputs)
from ppir.inference.paths import choose_path
from ppir.inference.predictor import check_options, create_predictor, short_reason
from ppir.inference.progress import Progress
from ppir.utils.tiling import count_tiles, tiled_forward

__all__ = ["load", "Model", "ExportedModel", "ExportedICT", "DygraphModel"]


def load(model, weights=None, **options):
    """A model to call on images.

    Args:
        model: an export folder (tools/export.py --save_dir), or a training config (.yml).
        weights: with a config, the weights (a .pdparams file or a checkpoint folder); the model
            then runs in dygraph (no export needed; slower).
        **options: for an export: device ("cpu"|"gpu"), backend ("paddle"|"onnxruntime"),
            enable_mkldnn, cpu_threads, precision ("fp32"|"bf16"|"fp16"), use_tensorrt, tile,
            tile_overlap (None = the export's measured defaults); for a config: device, tile,
            tile_overlap, ensemble (x8 self-ensemble, restoration), overrides (["key=value"]).

    Returns:
        a `Model`: `model(image, mask=None, ...)`.

    Raises:
        ppir.errors.PpirError (ConfigError, ExportError, CheckpointError): one sentence.
    """
    path = os.fspath(model)
    if weights is None:
        if os.path.isfile(path) and path.endswith((".yml", ".yaml")) and os.path.basename(path) != specs.SPEC_FILE:
            raise ConfigError(f"{path} is a config: pass its weights too, ppir.load(config, weights)")
        spec = specs.load_spec(path)
        cls = ExportedICT if spec.get("task") == "ict" else ExportedModel
        return cls(path, spec, **options)
    return DygraphModel(path, weights, **options)


class Model(abc.ABC):
    """What `ppir.load` returns. Attributes: `name`, `task` ("restoration", "inpainting" or
    "ict"), `needs_mask`, `samples` (True when a call returns a list of completions),
    `last_run` (the path that ran, its reason and the seconds of the last call)."""

    samples = False

    def __init__(self, spec):
        self.spec = spec
        self.name = str(spec["model_name"])
        self.task = str(spec.get("task") or ("inpainting" if specs.needs_mask(spec) else "restoration"))
        self.needs_mask = specs.needs_mask(spec)
        self.last_run = {}

    def __repr__(self):
        return f"<ppir {type(self).__name__} {self.name} ({self.task})>"

    def __call__(self, image, mask=None, *, mask_hole_value="white", n_samples=None, seed=None,
                 progress=False):
        """Restore or inpaint one image, or a list of images.

        Args:
            image: a path or an HxWx3 uint8 RGB array (uint16, float [0, 1], gray and opaque
                RGBA are accepted), any size; or a list of them (equal sizes run as one batch).
            mask: for inpainting models: a path or an HxW array (bool, 0/1, 0/255, 16-bit, gray,
                RGB), the image's size; a list with a list of images.
            mask_hole_value: "white" (default: nonzero/white = hole) or "black".
            n_samples, seed: ICT: completions per image and the sampling seed (default: the
                export's).
            progress: True draws a tqdm bar on stderr (tiles, sampled tokens); a callable gets
                progress(done, total, what).

        Returns:
            HxWx3 uint8 RGB of the input's size (ICT: a list of n_samples of them); a list of
            those for a list of images. Pixels outside an inpainting hole equal the input's.
        """
        many = isinstance(image, (list, tuple))
        images = list(image) if many else [image]
        if many and mask is not None and not (isinstance(mask, (list, tuple)) and len(mask) == len(images)):
            raise DataError(f"mask: give one mask per image ({len(images)} images)")
        masks = list(mask) if many and mask is not None else [mask] * len(images)
        imgs, holes = [], []
        for i, (img, m) in enumerate(zip(images, masks)):
            what = img if isinstance(img, (str, os.PathLike)) else (f"image {i}" if many else "image")
            imgs.append(host.as_image(img, str(what)))
            holes.append(self.read_mask(m, imgs[-1].shape[:2], mask_hole_value,
                                        f"mask {i}" if many else "mask"))
        outs = self.run(imgs, holes, n_samples=n_samples, seed=seed, progress=progress)
        from ppir.data.image_io import to_uint8

        outs = [[to_uint8(o) for o in out] if self.samples else to_uint8(out) for out in outs]
        return outs if many else outs[0]

    def read_mask(self, mask, hw, hole_value="white", what="mask"):
        """The HxW mask (1 = hole) for an image of size `hw`, or None for a model without one;
        DataError when a mask is missing or not wanted."""
        if mask is None:
            if self.needs_mask:
                raise DataError(f"{self.name} inpaints: pass a mask (white = hole, or "
                                f"mask_hole_value='black')")
            return None
        if not self.needs_mask:
            raise DataError(f"{self.name} takes no mask (it is a {self.task} model)")
        return host.as_mask(mask, hw, hole_value, what)

    @abc.abstractmethod
    def run(self, images, masks, n_samples=None, seed=None, progress=False):
        """The float API under `__call__`: HxWx3 float32 [0, 1] images and HxW masks (1 = hole,
        or None) -> one HxWx3 float32 result per image (ICT: a list per image)."""

    def _check_sampling(self, n_samples, seed):
        if n_samples is not None or seed is not None:
            if not self.samples:
                raise ConfigError(f"n_samples and seed are ICT options; {self.name} is not a sampling model")
        for name, value, low in (("n_samples", n_samples, 1), ("seed", seed, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < low):
                raise ConfigError(f"--{name} must be an integer >= {low}, got {value!r}")


_OUT_OF_MEMORY = re.compile(r"out of memory|bad[_ ]?alloc|failed to allocate|cannot allocate|resource ?exhausted",
                            re.IGNORECASE)


def _graph_failure(exc, what, shape, tile, multiple):
    """A ppir error for an exception raised inside a backend: out of memory gets the flag to pass."""
    if isinstance(exc, PpirError):
        return exc
    n, _, h, w = shape
    if isinstance(exc, MemoryError) or _OUT_OF_MEMORY.search(f"{type(exc).__name__}: {exc}"):
        smaller = max(multiple, (tile // 2 if tile else 512) // multiple * multiple)
        how = f"with --tile {tile}" if tile else "untiled"
        batch = f" (batch of {n}; or pass --batch_size 1)" if n > 1 else ""
        return DataError(f"{what} ({w}x{h}) does not fit in memory {how}{batch}; pass --tile {smaller}")
    return ExportError(f"{what} failed in the model ({short_reason(exc)})")


class ExportedModel(Model):
    """An export folder (restoration or inpainting: one graph) run by Paddle Inference or
    onnxruntime."""

    def __init__(self, model_dir, spec=None, device="cpu", backend=None, enable_mkldnn=None, cpu_threads=None,
                 precision="fp32", use_tensorrt=False, tile=None, tile_overlap=None):
        super().__init__(spec or specs.load_spec(model_dir))
        self.model_dir = model_dir
        self.record = specs.graph_record(self.spec)
        self.options = dict(backend=backend, enable_mkldnn=enable_mkldnn, device=device, precision=precision)
        check_options(backend or "paddle", device, True if enable_mkldnn is None else enable_mkldnn,
                      precision, use_tensorrt)
        self.cpu_threads, self.use_tensorrt = cpu_threads, use_tensorrt
        self.multiple = int(self.spec["pad_multiple"] or 1)
        self.tile = self.spec.get("tile") if tile is None else int(tile)
        self.overlap = int(self.spec.get("tile_overlap", 32) if tile_overlap is None else tile_overlap)
        if self.overlap < 0:
            raise ConfigError(f"--tile_overlap must be >= 0, got {self.overlap}")
        if self.tile and (self.tile < 0 or self.tile % self.multiple):
            raise ConfigError(f"--tile {self.tile} must be a positive multiple of {self.multiple} (this model's "
                              f"size multiple), or 0 for whole images")
        if self.tile and self.overlap >= self.tile:
            raise ConfigError(f"--tile_overlap {self.overlap} must be smaller than --tile {self.tile}")
        self._predictors = {}
        # Open the default path now: a missing or corrupt export fails here, in one line, before
        # a command line plans its outputs (other paths open when an input's size asks for them).
        specs.paddle_model_files(model_dir, self.record)
        self.predictor()

    def model_pixels(self, h, w):
        """H x W of the model's input for an h x w image (padded, capped by the tile)."""
        h, w = max(h, host.MIN_SIDE), max(w, host.MIN_SIDE)
        h, w = -(-h // self.multiple) * self.multiple, -(-w // self.multiple) * self.multiple
        if self.tile:
            h, w = min(self.tile, h), min(self.tile, w)
        return h * w

    def predictor(self, pixels=None, shape=None):
        """(predictor, why) of the path for an input of `pixels` (built once per path)."""
        backend, onednn, why = choose_path(self.model_dir, self.record, pixels=pixels, **self.options)
        key = (backend, onednn)
        if key not in self._predictors:
            self._predictors[key] = create_predictor(
                self.model_dir, self.record, self.spec["inputs"], backend=backend, enable_mkldnn=onednn,
                device=self.options["device"], cpu_threads=self.cpu_threads, precision=self.options["precision"],
                use_tensorrt=self.use_tensorrt, tune_shapes=[shape] if shape else None,
                batch_size=shape[0] if shape else 1)
        return self._predictors[key], why

    def run(self, images, masks, n_samples=None, seed=None, progress=False):
        self._check_sampling(n_samples, seed)
        start = time.perf_counter()
        items = []
        for img, mask in zip(images, masks):
            img, mask, hw = host.pad_small(img, mask)
            sample = host.host_sample(img, mask)
            items.append((host.graph_inputs(sample, self.spec), sample, hw))
        outs = [None] * len(items)
        for shape in dict.fromkeys(x.shape for x, _, _ in items):  # equal sizes share a batch
            index = [i for i, (x, _, _) in enumerate(items) if x.shape == shape]
            batch = self.forward(np.stack([items[i][0] for i in index]), progress)
            for k, i in enumerate(index):
                _, sample, (h, w) = items[i]
                outs[i] = host.postprocess(batch[k], self.spec, sample, self.name)[:h, :w]
        self.last_run["seconds"] = time.perf_counter() - start
        return outs

    def forward(self, x, progress=False):
        """The model on an NCHW batch of concatenated graph inputs (padded, tiled as configured)."""
        n, _, h, w = x.shape
        predictor, why = self.predictor(self.model_pixels(h, w), tuple(x.shape))
        self.last_run = {"path": predictor.path, "why": why}
        with Progress(progress, count_tiles(h, w, self.tile, self.overlap, self.multiple), "tiles") as bar:
            def run(part):
                out = predictor.run_concat(part)
                bar.step()
                return out

            try:
                return tiled_forward(run, x, tile=self.tile, overlap=self.overlap, multiple=self.multiple,
                                     pad_mode=self.spec.get("pad_mode", "reflect"))
            except Exception as exc:  # a backend's own types; never a raw traceback for users
                raise _graph_failure(exc, f"{self.name} input", x.shape, self.tile, self.multiple) from None


class ExportedICT(Model):
    """An ICT export: the transformer's logits graph drives the sampling loop, the upsampler graph
    turns each sampled prior into a completion. fp32 only (other logits change the sampled
    tokens)."""

    samples = True

    def __init__(self, model_dir, spec=None, device="cpu", backend=None, enable_mkldnn=None, cpu_threads=None,
                 precision="fp32", use_tensorrt=False, tile=None, tile_overlap=None):
        super().__init__(spec or specs.load_spec(model_dir))
        if use_tensorrt or precision != "fp32":
            raise ConfigError("an ICT export runs fp32 only (no TensorRT, fp16 or bf16: other logits "
                              "change the sampled tokens)")
        if tile:
            raise ConfigError("ICT completes whole images (its prior is the whole image's 32x32 tokens): "
                              "no --tile")
        if backend == "onnxruntime" and device != "cpu":
            raise ConfigError("ICT's ONNX logits graph runs on CPU; use --backend paddle with --device gpu")
        check_options(backend or "paddle", device, True if enable_mkldnn is None else enable_mkldnn, precision)
        self.model_dir = model_dir
        t_record, u_record = graph_records(self.spec)
        self.stage = self.spec["stages"]["transformer"]
        self.palette = load_palette_of(model_dir, self.stage)
        sampling = self.spec.get("sampling") or {}
        self.n_samples, self.seed = int(sampling.get("n_samples", 1)), int(sampling.get("seed", 0))
        t_backend, t_onednn, why = choose_path(model_dir, t_record, backend, enable_mkldnn, device)
        options = dict(device=device, cpu_threads=cpu_threads)
        self.logits = GraphLogits(create_predictor(
            model_dir, t_record, stage_inputs(t_record, TRANSFORMER_INPUTS), backend=t_backend,
            enable_mkldnn=t_onednn, **options))
        u_backend, u_onednn, _ = choose_path(model_dir, u_record, None, enable_mkldnn, device)
        self.upsample = GraphUpsampler(create_predictor(
            model_dir, u_record, stage_inputs(u_record, UPSAMPLER_INPUTS), backend=u_backend,
            enable_mkldnn=u_onednn, **options), self.spec["pad_multiple"])
        self.path = f"transformer: {self.logits.predictor.path} ({why}); upsampler: {self.upsample.predictor.path}"

    def run(self, images, masks, n_samples=None, seed=None, progress=False):
        """A list of `n_samples` completions per image; `last_run["priors"]` holds each image's
        sampled s x s priors (uint8)."""
        self._check_sampling(n_samples, seed)
        n_samples = self.n_samples if n_samples is None else int(n_samples)
        seed = self.seed if seed is None else int(seed)
        start, outs, priors = time.perf_counter(), [], []
        for img, mask in zip(images, masks):
            img, mask, (h, w) = host.pad_small(img, mask)
            try:
                results = complete(img.transpose(2, 0, 1), mask[None], self.palette, self.stage["prior_size"],
                                   self.logits, self.upsample, n_samples, self.stage["top_k"],
                                   self.stage["temperature"], seed, progress)
            except Exception as exc:
                raise _graph_failure(exc, "ICT input", (1, 7) + img.shape[:2], None, 4) from None
            outs.append([host.postprocess(out, self.spec, None, self.name)[:h, :w] for _, out in results])
            priors.append([prior for prior, _ in results])
        self.last_run = {"path": self.path, "seconds": time.perf_counter() - start, "priors": priors}
        return outs


class DygraphModel(Model):
    """A training config and its weights, run in dygraph (`model.predict`): no export needed."""

    def __init__(self, config, weights, device="cpu", tile=None, tile_overlap=32, ensemble=False, overrides=()):
        from ppir.config import load_config
        from ppir.engine.checkpoint import build_trained_model

        cfg = load_config(os.fspath(config), list(overrides) + [f"Global.pretrained_model={os.fspath(weights)}",
                                                                f"Global.device={device}"])
        self.model = build_trained_model(cfg)
        spec = dict(self.model.io_spec())
        network = cfg["Model"].get("network") or next(iter(cfg["Model"]["networks"].values()))
        spec["model_name"] = "ICT" if hasattr(self.model, "n_samples") else network["name"]
        super().__init__(spec)
        self.samples = hasattr(self.model, "n_samples")
        if self.samples:
            self.task = "ict"
        if (tile or ensemble) and len(spec["inputs"]) > 1:
            raise ConfigError(f"tile and ensemble are restoration options; {self.name} takes a mask")
        self.tile, self.overlap, self.ensemble = tile, tile_overlap, ensemble
        self.multiple = int(spec.get("pad_multiple") or 1)
        self.path = f"dygraph ({cfg['Global']['device']})"

    def _predict(self, inputs):
        import paddle

        return self.model.predict({k: paddle.to_tensor(v) for k, v in inputs.items()}).numpy()

    def _restore(self, x, progress):
        from ppir.utils.ensemble import ensemble_forward

        fn = (lambda t: ensemble_forward(lambda u: self._predict({"input": u}), t)) if self.ensemble \
            else (lambda t: self._predict({"input": t}))
        n, _, h, w = x.shape
        with Progress(progress, count_tiles(h, w, self.tile, self.overlap, self.multiple), "tiles") as bar:
            def run(part):
                out = fn(part)
                bar.step()
                return out

            return tiled_forward(run, x, tile=self.tile, overlap=self.overlap, multiple=self.multiple)

    def run(self, images, masks, n_samples=None, seed=None, progress=False):
        self._check_sampling(n_samples, seed)
        start, outs = time.perf_counter(), []
        for img, mask in zip(images, masks):
            img, mask, (h, w) = host.pad_small(img, mask)
            sample = host.host_sample(img, mask)
            if self.samples:
                out = self._complete(img, mask, n_samples, seed, progress)
                outs.append([o[:h, :w] for o in out])
                continue
            if mask is None:
                out = self._restore(sample["input"][None], progress)
            else:
                out = self._predict({k: v[None] for k, v in sample.items()})
            if not np.isfinite(out).all():
                raise DataError(f"{self.name} produced non-finite values (NaN/inf); the weights are broken")
            outs.append(np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0)[:h, :w])
        self.last_run = {"path": self.path, "seconds": time.perf_counter() - start}
        return outs

    def _complete(self, img, mask, n_samples, seed, progress):
        from ppir.models.ict_sampling import paddle_logits_fn

        transformer, upsampler = self.model.transformer, self.model.upsampler

        def upsample(image, hole, prior):
            return self._predict_with(upsampler, {"input": image[None], "mask": hole[None], "prior": prior[None]})[0]

        results = complete(img.transpose(2, 0, 1), mask[None], transformer.palette, transformer.prior_size,
                           paddle_logits_fn(transformer.net), upsample,
                           self.model.n_samples if n_samples is None else n_samples, transformer.top_k,
                           transformer.temperature, transformer.sample_seed if seed is None else seed, progress)
        return [np.clip(out.transpose(1, 2, 0), 0.0, 1.0) for _, out in results]

    @staticmethod
    def _predict_with(model, inputs):
        import paddle

        return model.predict({k: paddle.to_tensor(np.ascontiguousarray(v, np.float32)) for k, v in inputs.items()}).numpy()
