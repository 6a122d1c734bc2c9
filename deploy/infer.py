"""Run an exported ppir model (Paddle Inference or onnxruntime) on an image or a folder of images.

    python deploy/infer.py --model_dir DIR --input noisy.png --output restored.png
    python deploy/infer.py --model_dir DIR --input noisy_dir/       # -> ./output/infer/<model_name>/
    python deploy/infer.py --model_dir DIR --input noisy_dir/ --output out_dir/ --gt clean_dir/
    python deploy/infer.py --model_dir DIR --input big.png --output out.png --tile 512 --tile_overlap 32
    python deploy/infer.py --model_dir DIR --input dir/ --output out/ --benchmark True --cpu_threads 2
    python deploy/infer.py --model_dir DIR --input dir/ --output out/ --backend onnxruntime

Everything about the model comes from DIR/inference.yml (written by tools/export.py); no training
config is needed. Boolean flags take True/False values, as TIPC passes them (`--enable_mkldnn=True`).
See docs/deploy.md.
"""
import argparse
import math
import os
import re
import shutil
import sys

if __package__ in (None, ""):  # run as a script: make `ppir` importable from a source checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

import ppir  # noqa: F401  (sets GLOG/OMP defaults before paddle is imported)
from ppir.errors import ConfigError, DataError, ExportError, run_cli
from ppir.utils import inference_io as io
from ppir.utils.paths import check_outputs, record_outputs

PRECISIONS = ("fp32", "fp16", "bf16")


def _paddle_version():
    import paddle

    return paddle.__version__


def onednn_passes_to_delete(version):
    """IR passes to delete under oneDNN for this Paddle version (measured on CPU builds 3.0-3.3).

    Paddle 3.3.x (measured on 3.3.1): with PIR + oneDNN, any interpolate (MIRNetV2's and
    MIMO-UNet's resampling) fails at run() (ConvertPirAttribute2RuntimeAttribute,
    onednn_instruction.cc:116) unless onednn_placement_pass is deleted, and Conv2D followed by
    LeakyReLU (MIRNetV2) segfaults in FusedConv2dOp::Build unless
    conv_activation_onednn_fuse_pass is deleted. 3.0-3.2 have neither bug, and deleting the
    passes there only costs speed. Newer versions are treated like 3.3 until measured.
    """
    parts = version.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return []
    if (major, minor) == (0, 0):  # develop builds report 0.0.0
        major, minor = 99, 0
    if (major, minor) >= (3, 3):
        return ["onednn_placement_pass", "conv_activation_onednn_fuse_pass"]
    return []


def default_cpu_threads():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def cpu_has_bf16():
    """Whether oneDNN can run bf16 kernels fast here (AVX512-BF16 or AMX)."""
    from paddle.base import core

    return bool(core.supports_bfloat16_fast_performance())


def short_reason(exc):
    """One line out of a (possibly multi-line C++) exception message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    line = next((x for x in lines if "Error" in x or "error" in x or "Hint" in x), lines[0] if lines else "")
    return f"{type(exc).__name__}: {line[:300]}"


class Predictor:
    """An export directory behind one call: `run(x)` with x an NCHW float32 array holding the
    graph's inputs concatenated along channels (inference.yml `inputs`, in order; one image for a
    restoration model), returning the NCHW output array. Set-up follows PaddleSeg's
    deploy/python/infer.py: a base config, then a CPU or GPU (optionally TensorRT) set-up
    method; or an onnxruntime session."""

    def __init__(self, model_dir, device="cpu", enable_mkldnn=True, cpu_threads=None, precision="fp32",
                 use_tensorrt=False, backend="paddle", batch_size=1, tune_shapes=None):
        self.model_dir = model_dir
        self.spec = io.load_spec(model_dir)
        self.device = device
        self.enable_mkldnn = bool(enable_mkldnn) and device == "cpu"
        self.cpu_threads = int(cpu_threads or default_cpu_threads())
        self.precision = precision
        self.use_tensorrt = bool(use_tensorrt) and device == "gpu"
        self.backend = backend
        self.batch_size = batch_size
        self._check_options()
        if backend == "onnxruntime":
            self._init_onnxruntime()
        else:
            model_file, params_file = io.paddle_model_files(model_dir, self.spec)
            if self.use_tensorrt and model_file.endswith(".json"):
                model_file, params_file = self._pir_tensorrt_model(model_file, tune_shapes)
            config = self._init_base_config(model_file, params_file)
            if device == "gpu":
                self._init_gpu_config(config, tune_shapes, legacy=model_file.endswith(".pdmodel"))
            else:
                self._init_cpu_config(config)
            from paddle import inference

            try:
                self.predictor = inference.create_predictor(config)
            except Exception as exc:  # a corrupt or truncated model file: Paddle raises assorted types
                raise ExportError(f"cannot load the model {model_file} + {params_file} (corrupt or "
                                  f"incomplete export?): {short_reason(exc)}") from None
            self._check_graph_inputs(self.predictor.get_input_names())
            self._output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def _check_options(self):
        if self.device not in ("cpu", "gpu"):
            raise ConfigError(f"--device must be cpu or gpu, got {self.device!r}")
        if self.backend not in ("paddle", "onnxruntime"):
            raise ConfigError(f"--backend must be paddle or onnxruntime, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.backend == "onnxruntime" and self.precision != "fp32":
            raise ConfigError("--backend onnxruntime runs the fp32 ONNX model; use --precision fp32")
        if self.backend == "paddle" and self.device == "cpu":
            if self.precision == "fp16":
                raise ConfigError("--precision fp16 needs --device gpu (Paddle has no fp16 CPU kernels)")
            if self.precision == "bf16" and not self.enable_mkldnn:
                raise ConfigError("--precision bf16 on CPU needs --enable_mkldnn True")
            if self.precision == "bf16" and not cpu_has_bf16():
                # Measured on an AVX2-only CPU: oneDNN silently runs fp32 (bit-identical output).
                raise ConfigError("--precision bf16 needs a CPU with AVX512-BF16 or AMX; this one has "
                                  "neither, and Paddle would silently run fp32: use --precision fp32")
        if self.device == "gpu" and self.precision == "bf16":
            raise ConfigError("--precision bf16 is a CPU (oneDNN) option; use fp32 or fp16 on GPU")
        if self.backend == "paddle" and self.device == "gpu":
            import paddle

            # A CPU build only logs "Please use PaddlePaddle with GPU version" and runs on CPU.
            if not paddle.is_compiled_with_cuda():
                raise ConfigError("--device gpu needs a CUDA build of paddlepaddle (paddlepaddle-gpu); "
                                  f"paddle {paddle.__version__} here is CPU-only")

    # ---- Paddle Inference --------------------------------------------------------------------

    def _init_base_config(self, model_file, params_file):
        from paddle import inference

        config = inference.Config(model_file, params_file)
        # PIR pass banners go to std::cout; GLOG_minloglevel does not silence them, this does.
        config.disable_glog_info()
        config.switch_ir_optim(True)
        # No enable_memory_optim(): it fails for every PIR model on Paddle 3.0-3.3
        # ("Not find predictor_id 0 and pass_name memory_optimize_pass", pass_result_info.h:48).
        return config

    def _init_cpu_config(self, config):
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(self.cpu_threads)
        if self.enable_mkldnn:
            # The mkldnn spellings exist on 3.0-3.3; the onednn ones only from 3.1.
            config.enable_mkldnn()
            if self.precision == "bf16":
                config.enable_mkldnn_bfloat16()
            for name in onednn_passes_to_delete(_paddle_version()):
                config.delete_pass(name)
        else:
            config.disable_mkldnn()  # oneDNN is on by default from Paddle 3.3

    # GPU and TensorRT: untested here (CPU-only machines); needs paddlepaddle-gpu, whose 3.x wheels
    # are on Paddle's own package index. See docs/deploy.md.

    def _init_gpu_config(self, config, tune_shapes, legacy):
        """Plain GPU, or TensorRT through Paddle Inference's subgraph engine for a legacy .pdmodel
        (a PIR model was already converted by `_pir_tensorrt_model`)."""
        from paddle import inference

        half = inference.PrecisionType.Half
        precision = half if self.precision == "fp16" else inference.PrecisionType.Float32
        if not (self.use_tensorrt and legacy):
            config.enable_use_gpu(256, 0, inference.PrecisionType.Float32 if self.use_tensorrt else precision)
            return
        config.enable_use_gpu(256, 0)
        shape_file = os.path.join(self.model_dir, io.SHAPE_RANGE_FILE)
        if not os.path.isfile(shape_file):
            if not tune_shapes:
                raise ConfigError(f"TensorRT needs {shape_file}; pass the input shapes to collect it")
            self._collect_shape_range(shape_file, tune_shapes)
        config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=self.batch_size,
                                      min_subgraph_size=3, precision_mode=precision,
                                      use_static=False, use_calib_mode=False)
        # allow_build_at_runtime=True: a shape outside the collected range rebuilds the engine
        # instead of failing.
        config.enable_tuned_tensorrt_dynamic_shape(shape_file, True)

    def _collect_shape_range(self, shape_file, shapes):
        """Run each input shape once on plain GPU with shape collection on (PaddleSeg's auto-tune)."""
        from paddle import inference

        config = self._init_base_config(*io.paddle_model_files(self.model_dir, self.spec))
        config.enable_use_gpu(256, 0)
        config.collect_shape_range_info(shape_file)
        predictor = inference.create_predictor(config)
        for shape in sorted(set(tuple(s) for s in shapes)):
            for name, part in self._split(np.zeros(shape, dtype=np.float32)):
                handle = predictor.get_input_handle(name)
                handle.reshape(list(part.shape))
                handle.copy_from_cpu(part)
            predictor.run()

    def _pir_tensorrt_model(self, model_file, tune_shapes):
        """TensorRT for a PIR (.json) model: Paddle 3.x applies `enable_tensorrt_engine` to legacy
        .pdmodel files only; a PIR model is converted once with `paddle.tensorrt.export.convert`
        into DIR/trt_<precision>/, with a dynamic-shape range covering every shape in
        `tune_shapes` (widened and re-converted when later inputs fall outside it)."""
        import yaml

        cache = os.path.join(self.model_dir, f"trt_{self.precision}")
        record = os.path.join(cache, "shape_range.yml")
        prefix = os.path.join(cache, "inference")
        shapes = [tuple(int(d) for d in s) for s in (tune_shapes or ())]
        cached = None
        if os.path.isfile(record) and os.path.isfile(prefix + ".json"):
            with open(record) as f:
                cached = yaml.safe_load(f)
        if not shapes and cached is None:
            raise ConfigError(f"TensorRT needs the input shapes once to build {cache}")
        if cached:
            shapes += [tuple(cached["min"]), tuple(cached["max"])]
        low = tuple(min(s[i] for s in shapes) for i in range(4))
        high = tuple(max(s[i] for s in shapes) for i in range(4))
        if cached is None or tuple(cached["min"]) != low or tuple(cached["max"]) != high:
            from paddle.tensorrt.export import Input, PrecisionMode, TensorRTConfig, convert

            shutil.rmtree(cache, ignore_errors=True)
            os.makedirs(cache)
            spec_inputs = [Input(min_input_shape=(low[0], int(item["channels"])) + low[2:],
                                 optim_input_shape=(high[0], int(item["channels"])) + high[2:],
                                 max_input_shape=(high[0], int(item["channels"])) + high[2:],
                                 input_range=tuple(float(v) for v in item.get("value_range", (0.0, 1.0))),
                                 name=item["name"]) for item in self.spec["inputs"]]
            mode = PrecisionMode.FP16 if self.precision == "fp16" else PrecisionMode.FP32
            convert(os.path.splitext(model_file)[0],
                    TensorRTConfig(inputs=spec_inputs, precision_mode=mode, save_model_dir=prefix))
            with open(record, "w") as f:
                yaml.safe_dump({"min": list(low), "max": list(high)}, f)
        return prefix + ".json", prefix + ".pdiparams"

    # ---- onnxruntime -------------------------------------------------------------------------

    def _init_onnxruntime(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.cpu_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # paddle2onnx leaves unused initializers; ORT warns per tensor
        providers = ["CPUExecutionProvider"]
        if self.device == "gpu":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError("--device gpu with onnxruntime needs onnxruntime-gpu (CUDAExecutionProvider)")
            providers.insert(0, "CUDAExecutionProvider")
        model_file = io.onnx_model_file(self.model_dir, self.spec)
        try:
            self.session = ort.InferenceSession(model_file, options, providers=providers)
        except Exception as exc:  # onnxruntime's own exception types
            raise ExportError(f"cannot load the ONNX model {model_file} (corrupt or incomplete export?): "
                              f"{short_reason(exc)}") from None
        self._check_graph_inputs([i.name for i in self.session.get_inputs()])

    # ---- running -----------------------------------------------------------------------------

    def _check_graph_inputs(self, names):
        expected = [item["name"] for item in self.spec["inputs"]]
        if sorted(names) != sorted(expected):
            raise ExportError(f"{self.model_dir}: the model's inputs {names} do not match inference.yml "
                              f"inputs {expected}; re-export it")

    def _split(self, x):
        """(input name, NCHW part) for each graph input of the channel-concatenated array."""
        parts, start = [], 0
        for item in self.spec["inputs"]:
            end = start + int(item["channels"])
            parts.append((item["name"], np.ascontiguousarray(x[:, start:end])))
            start = end
        return parts

    def run(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        channels = io.input_channels(self.spec)
        if x.ndim != 4 or x.shape[1] != channels:
            raise DataError(f"model input must be N x {channels} x H x W, got {list(x.shape)}")
        feeds = self._split(x)
        if self.backend == "onnxruntime":
            return self.session.run(None, dict(feeds))[0]
        for name, part in feeds:
            handle = self.predictor.get_input_handle(name)
            handle.reshape(list(part.shape))
            handle.copy_from_cpu(part)
        self.predictor.run()
        return self._output.copy_to_cpu()

    def config_status(self):
        """The Conf-info values of the benchmark report."""
        return {
            "runtime_device": self.device,
            "ir_optim": self.backend == "paddle" or None,
            "enable_memory_optim": False,
            "enable_tensorrt": self.use_tensorrt,
            "enable_mkldnn": self.enable_mkldnn if self.backend == "paddle" else None,
            "cpu_math_library_num_threads": self.cpu_threads,
        }


# ---- command line ----------------------------------------------------------------------------

def str2bool(text):
    value = str(text).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="export directory (tools/export.py --save_dir)")
    parser.add_argument("--input", required=True, help="an image file or a folder of images")
    parser.add_argument("--mask", default=None,
                        help="mask file or folder (paired with --input by file name), for models that take a mask")
    parser.add_argument("--mask_hole_value", default="white", choices=("white", "black"),
                        help="which side of the mask files is the hole (default white)")
    parser.add_argument("--output", default=None,
                        help="an image file (one input) or a folder (default: ./output/infer/<model_name>/)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files that ppir did not write")
    parser.add_argument("--gt", default=None, help="ground truth file or folder: prints PSNR/SSIM")
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--enable_mkldnn", type=str2bool, default=None,
                        help="oneDNN on CPU (default: the path tools/export.py measured fastest at the "
                             "size nearest to the input, inference.yml default_path_by_size; else True)")
    parser.add_argument("--cpu_threads", type=int, default=None, help="default: all cores of this process")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--use_tensorrt", type=str2bool, default=False)
    parser.add_argument("--batch_size", type=int, default=1, help="images of equal size run together")
    parser.add_argument("--tile", type=int, default=None,
                        help="tile size for large images (default: inference.yml tile; 0 = whole image)")
    parser.add_argument("--tile_overlap", type=int, default=None, help="default: inference.yml tile_overlap")
    parser.add_argument("--benchmark", type=str2bool, default=False, help="print the AutoLog-format report")
    parser.add_argument("--backend", default=None, choices=("paddle", "onnxruntime"),
                        help="default: the path tools/export.py measured fastest at the size nearest to "
                             "the input (inference.yml default_path_by_size); else paddle")
    parser.add_argument("--n_samples", type=int, default=None,
                        help="ICT: completions per image (default: inference.yml sampling)")
    parser.add_argument("--seed", type=int, default=None,
                        help="ICT: sampling seed (default: inference.yml sampling)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.cpu_threads is not None and args.cpu_threads < 1:
        parser.error(f"--cpu_threads must be >= 1, got {args.cpu_threads}")
    return args


def group_by_size(items):
    """Split loaded items into runs of equal H x W (only those can share a batch)."""
    groups = []
    for item in items:
        if groups and groups[-1][0]["image"].shape == item["image"].shape:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def model_input_shapes(chw, batch_size, tile, multiple):
    """The NCHW shapes the model will see for one image of shape `chw` (for TensorRT tuning)."""
    c, h, w = chw
    h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    if tile:
        h, w = min(tile, h), min(tile, w)
    return {(b, c, h, w) for b in sorted({1, batch_size})}


def choose_path(args, spec, pixels=None):
    """(backend, enable_mkldnn, why): flags the user gave win; otherwise the fastest fp32 CPU path
    that tools/export.py measured for this model at the timed size nearest to `pixels` (the
    model input's H x W: the image, or the tile), from inference.yml `default_path_by_size`
    (`default_path` in older exports); otherwise Paddle Inference with oneDNN."""
    if args.backend is not None or args.enable_mkldnn is not None or args.device != "cpu" \
            or args.precision != "fp32":
        backend = args.backend or "paddle"
        onednn = True if args.enable_mkldnn is None else args.enable_mkldnn
        failed = (spec.get("export") or {}).get("failed_paths") or {}
        path = f"paddle_onednn_{'on' if onednn else 'off'}"
        if backend == "paddle" and args.device == "cpu" and path in failed:
            raise ExportError(f"this export's Paddle Inference path with oneDNN {'on' if onednn else 'off'} "
                              f"did not match dygraph when it was exported ({failed[path]}); "
                              f"run with --enable_mkldnn {not onednn}")
        return backend, onednn, "as requested"
    measured, where = spec.get("default_path"), ""
    by_size = spec.get("default_path_by_size") or []
    if by_size and pixels:
        measured = min(by_size, key=lambda e: abs(math.log(pixels / (e["size"][0] * e["size"][1]))))
        where = f" at {measured['size'][1]}x{measured['size'][0]}, the timed size nearest to this input"
    if isinstance(measured, dict) and measured.get("backend") in ("paddle", "onnxruntime"):
        onnx_ok = measured["backend"] != "onnxruntime" or os.path.isfile(
            os.path.join(args.model_dir, spec.get("onnx_file") or io.ONNX_FILE))
        if onnx_ok:
            return (measured["backend"], bool(measured.get("enable_mkldnn", True)),
                    f"the fastest path measured by tools/export.py{where}")
    return "paddle", True, "default"


def input_pixels(paths, tile, multiple):
    """The largest model input (H x W after padding, capped by the tile) among image files,
    read from their headers."""
    from PIL import Image

    largest = 0
    for path in paths:
        try:
            with Image.open(path) as img:
                w, h = img.size
        except Exception:  # unreadable files are reported when they are loaded
            continue
        h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        if tile:
            h, w = min(tile, h), min(tile, w)
        largest = max(largest, h * w)
    return largest or None


def build_metrics(spec):
    from ppir.metrics import METRICS, build_metrics as build

    cfgs = spec.get("metrics") or [{"name": "PSNR"}, {"name": "SSIM"}]
    # A set metric (FID) scores a whole evaluation set, not one image: tools/eval.py reports it.
    cfgs = [c for c in cfgs if not (isinstance(c, dict) and c.get("name") in METRICS
                                    and getattr(METRICS.get(c["name"]), "per_set", False))]
    return build(cfgs, where="inference.yml metrics")


# Paddle raises MemoryError for a failed host allocation; onnxruntime and some Paddle paths raise
# RuntimeError-like types whose message says so.
_OUT_OF_MEMORY = re.compile(r"out of memory|bad[_ ]?alloc|failed to allocate|cannot allocate|resource ?exhausted",
                            re.IGNORECASE)


def is_out_of_memory(exc):
    return isinstance(exc, MemoryError) or bool(_OUT_OF_MEMORY.search(f"{type(exc).__name__}: {exc}"))


def out_of_memory_error(path, shape, tile, multiple):
    """The one line for an image that does not fit: what was tried and what to pass instead."""
    n, _, h, w = shape
    smaller = max(multiple, (tile // 2 if tile else 512) // multiple * multiple)
    how = f"with --tile {tile}" if tile else "untiled"
    batch = f" (batch of {n}; or pass --batch_size 1)" if n > 1 else ""
    return DataError(f"{path} ({w}x{h}) does not fit in memory {how}{batch}; pass --tile {smaller}")


def main(argv=None):
    args = parse_args(argv)
    from ppir.data.image_io import read_image, write_image
    from ppir.data.masks import read_mask
    from ppir.utils.tiling import tiled_forward

    spec = io.load_spec(args.model_dir)
    if spec.get("task") == "ict":
        return ict_main(args, spec)
    if args.mask and not io.needs_mask(spec):
        raise DataError(f"--mask given, but the model in {args.model_dir} takes no mask (inference.yml inputs)")
    if io.needs_mask(spec) and not args.mask:
        raise DataError(f"the model in {args.model_dir} needs a mask: pass --mask (white = hole; "
                        f"--mask_hole_value black for masks drawn the other way)")
    tile = spec.get("tile") if args.tile is None else args.tile
    overlap = spec.get("tile_overlap", 32) if args.tile_overlap is None else args.tile_overlap
    multiple = int(spec["pad_multiple"] or 1)
    if tile and (tile % multiple or not 0 <= overlap < tile):
        raise ConfigError(f"--tile {tile} must be a multiple of {multiple} and larger than --tile_overlap {overlap}")

    if not (args.output or "").strip():  # absent, or an empty value from a harness (`--output=`)
        args.output = io.default_output_dir(spec)
        print(f"no --output given: writing results to {args.output}")
    inputs = io.list_inputs(args.input)
    masks = io.match_files(inputs, args.mask, "--mask") if args.mask else [None] * len(inputs)
    gts = io.match_files(inputs, args.gt, "--gt") if args.gt else [None] * len(inputs)
    reads = [(args.mask, "--mask"), (args.gt, "--gt")] + [(p, "--mask") for p in masks] + [(p, "--gt") for p in gts]
    reads += [(os.path.join(args.model_dir, n), "--model_dir") for n in io.EXPORT_FILES]
    outputs = io.plan_outputs(args.input, inputs, args.output, reads, overwrite=args.overwrite)
    metrics = build_metrics(spec) if args.gt else []

    def load(i):
        img = read_image(inputs[i])
        mask = read_mask(masks[i], args.mask_hole_value, expect_hw=img.shape[:2]) if masks[i] else None
        sample = io.host_sample(img, mask)
        return {"index": i, "image": io.graph_inputs(sample, spec), "sample": sample}

    failures = io.Failures(len(inputs))

    def try_load(i, report=True):
        try:
            return load(i)
        except (DataError, MemoryError) as exc:
            if report:
                failures.add(inputs[i], exc if isinstance(exc, DataError)
                             else DataError(f"not enough memory to read {inputs[i]}"))
        return None

    tune_shapes = None
    if args.use_tensorrt and args.device == "gpu":
        tune_shapes = set()
        for item in filter(None, (try_load(i, report=False) for i in range(len(inputs)))):
            tune_shapes |= model_input_shapes(item["image"].shape, args.batch_size, tile, multiple)
    args.backend, args.enable_mkldnn, why = choose_path(args, spec, input_pixels(inputs, tile, multiple))
    predictor = Predictor(args.model_dir, device=args.device, enable_mkldnn=args.enable_mkldnn,
                          cpu_threads=args.cpu_threads, precision=args.precision,
                          use_tensorrt=args.use_tensorrt, backend=args.backend,
                          batch_size=args.batch_size, tune_shapes=tune_shapes)
    record_outputs(outputs)

    def forward(x):
        return tiled_forward(predictor.run, x, tile=tile, overlap=overlap, multiple=multiple,
                             pad_mode=spec.get("pad_mode", "reflect"))

    def forward_group(group):
        try:
            return forward(np.stack([item["image"] for item in group]))
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
        shape = (len(group),) + group[0]["image"].shape
        error = out_of_memory_error(inputs[group[0]["index"]], shape, tile, multiple)
        for item in group:
            failures.add(inputs[item["index"]], error)
        return []

    logger = None
    if args.benchmark:
        from ppir.utils.benchmark_log import AutoLogger

        first = next(filter(None, (try_load(i, report=False) for i in range(len(inputs)))), None)
        if first is not None:  # warm-up: oneDNN primitives / TensorRT engines are built here
            try:
                forward(first["image"][None])
            except Exception as exc:
                if not is_out_of_memory(exc):  # the run below reports it per image
                    raise
        print(f"path: {args.backend}" + (f", oneDNN {'on' if args.enable_mkldnn else 'off'}"
                                         if args.backend == "paddle" and args.device == "cpu" else "")
              + f" ({why})")
        logger = AutoLogger(spec["model_name"], args.precision, batch_size=args.batch_size,
                            data_shape="dynamic", inference_config=predictor.config_status())

    scores = {m.name: [] for m in metrics}
    written = 0
    for start in range(0, len(inputs), args.batch_size):
        if logger:
            logger.times.start()
        items = list(filter(None, (try_load(i) for i in range(start, min(start + args.batch_size, len(inputs))))))
        if logger:
            logger.times.stamp()
        results = []
        for group in group_by_size(items):
            results.extend(zip(group, forward_group(group)))
        if logger:
            logger.times.stamp()
        restored = []
        for item, out in results:
            restored.append((item["index"], io.postprocess(out, spec, item["sample"])))
            write_image(outputs[item["index"]], restored[-1][1])
            written += 1
        if logger:
            logger.times.end(stamp=True)
        for i, img in restored:  # scoring is not part of the timed postprocess
            if gts[i]:
                try:
                    values = score(metrics, img, gts[i], inputs[i])
                except DataError as exc:
                    failures.add(inputs[i], exc)
                    continue
                for name, value in values.items():
                    scores[name].append(value)
                print(f"{os.path.basename(inputs[i])}  " + "  ".join(f"{k}: {v:.4f}" for k, v in values.items()))
    if metrics and scores[metrics[0].name]:
        print(f"mean over {len(scores[metrics[0].name])} images  "
              + "  ".join(f"{k}: {np.mean(v):.4f}" for k, v in scores.items()))
    print(f"wrote {written} image(s) to {args.output}")
    if logger:
        logger.report()
    return failures.exit_code()


def ict_main(args, spec):
    """ICT's two stages from one export (tools/export.py with an ICTModel config, or
    tools/ict_export.py): per image, the transformer's logits graph drives the shared host-side
    sampling loop (ppir.models.ict_inference.complete), then the upsampler graph turns each
    sampled prior into a composite. Every sample is written, `<name>_sample<k>.png`, with its
    s x s prior `<name>_prior<k>.png`. fp32 only (the transformer on the path the export measured
    fastest unless flags say otherwise), one image at a time (each sampling step is one batch of
    n_samples rows); --benchmark prints the seconds per image and per forward."""
    import time

    from ppir.data.image_io import read_image, write_image
    from ppir.data.masks import read_mask
    from ppir.data.palette import load_palette
    from ppir.models.ict_inference import UpsamplerPredictor, complete

    if not args.mask:
        raise DataError(f"the model in {args.model_dir} needs a mask: pass --mask (white = hole)")
    if args.use_tensorrt or args.precision != "fp32":
        raise ConfigError("an ICT export runs fp32 only (no TensorRT, fp16 or bf16: other logits "
                          "change the sampled tokens)")
    stages, sampling = spec["stages"], spec.get("sampling", {})
    n_samples = args.n_samples or sampling.get("n_samples", 1)
    seed = sampling.get("seed", 0) if args.seed is None else args.seed
    threads = args.cpu_threads or default_cpu_threads()
    onednn = args.enable_mkldnn is not False and args.device == "cpu"  # default (None): on

    def prefix(stage):
        return os.path.join(args.model_dir, os.path.splitext(stages[stage]["model_file"])[0])

    transformer = stages["transformer"]
    logits_fn, logits_path = ict_logits_fn(args, transformer, prefix("transformer"), threads)
    upsample_fn = UpsamplerPredictor(prefix("upsampler"), args.device, threads, onednn)
    palette = load_palette(os.path.join(args.model_dir, transformer["palette_file"]))
    if not (args.output or "").strip():
        args.output = io.default_output_dir(spec)
    inputs = io.list_inputs(args.input)
    masks = io.match_files(inputs, args.mask, "--mask")
    reads = [(args.mask, "--mask")] + [(p, "--mask") for p in masks]
    bases = io.plan_outputs(args.input, inputs, args.output, reads, overwrite=args.overwrite)
    names = [[(f"{root}_sample{k}{ext or '.png'}", f"{root}_prior{k}.png") for k in range(n_samples)]
             for root, ext in map(os.path.splitext, bases)]
    every = [p for per_input in names for pair in per_input for p in pair]
    check_outputs(every, args.overwrite)
    record_outputs(every)
    failures = io.Failures(len(inputs))
    for i, path in enumerate(inputs):
        try:
            img = read_image(path)
            mask = read_mask(masks[i], args.mask_hole_value, expect_hw=img.shape[:2])
        except DataError as exc:
            failures.add(path, exc)
            continue
        start = time.perf_counter()
        results = complete(img.transpose(2, 0, 1), mask[None], palette, transformer["prior_size"],
                           logits_fn, upsample_fn, n_samples, transformer["top_k"],
                           transformer["temperature"], seed)
        if args.benchmark:
            print(f"{os.path.basename(path)}: {n_samples} sample(s) in "
                  f"{time.perf_counter() - start:.3f} s ({args.device}, oneDNN "
                  f"{'on' if onednn else 'off'}, {threads} threads)")
        for (out_path, prior_path), (prior, out) in zip(names[i], results):
            write_image(out_path, out.transpose(1, 2, 0))
            write_image(prior_path, prior)
    print(f"wrote {n_samples} sample(s) for each of {len(inputs) - len(failures.paths)} image(s) "
          f"to {args.output}")
    if args.benchmark:
        per = logits_fn.seconds / max(logits_fn.calls, 1)
        print(f"ICT transformer: {logits_path}, {threads} thread(s); {logits_fn.calls} forwards, "
              f"{per:.4f} s per forward, {logits_fn.seconds:.2f} s of sampling")
    return failures.exit_code()


class TimedLogits:
    """A logits_fn that counts its calls and their wall time (--benchmark)."""

    def __init__(self, fn):
        self.fn, self.calls, self.seconds = fn, 0, 0.0

    def __call__(self, *args):
        import time

        tic = time.perf_counter()
        out = self.fn(*args)
        self.seconds += time.perf_counter() - tic
        self.calls += 1
        return out


def ict_logits_fn(args, transformer, prefix, threads):
    """The transformer's logits_fn and a description of its path: the flags given win, else the
    fastest CPU path tools/ict_export.py measured (inference.yml stages.transformer.default_path),
    else Paddle Inference with oneDNN."""
    from ppir.models.ict_inference import OnnxLogits, PredictorLogits

    view = {"default_path": transformer.get("default_path"), "onnx_file": transformer.get("onnx_file"),
            "export": {"failed_paths": transformer.get("failed_paths") or {}}}
    backend, onednn, why = choose_path(args, view)
    if why.startswith("the fastest"):  # choose_path names tools/export.py and the top-level key
        why = "the fastest path tools/ict_export.py measured (inference.yml stages.transformer.default_path)"
    onednn = onednn and args.device == "cpu"
    if backend == "onnxruntime":
        if args.device != "cpu":
            raise ConfigError("ICT's ONNX logits graph runs on CPU; use --backend paddle with --device gpu")
        onnx_file = os.path.join(args.model_dir, transformer.get("onnx_file") or "")
        if not transformer.get("onnx_file") or not os.path.isfile(onnx_file):
            raise ExportError(f"{args.model_dir} has no ONNX logits graph; re-export with tools/ict_export.py --onnx")
        fn = OnnxLogits(onnx_file, threads)
    else:
        fn = PredictorLogits(prefix, args.device, threads, onednn)
    where = "onnxruntime" if backend == "onnxruntime" else f"Paddle Inference, oneDNN {'on' if onednn else 'off'}"
    return TimedLogits(fn), f"{where} ({why})"


def score(metrics, img, gt_path, input_path):
    """The metrics of one result against its ground truth; DataError if the two do not fit."""
    from ppir.data.image_io import read_image

    gt = read_image(gt_path)
    if gt.shape != img.shape:
        raise DataError(f"--gt {gt_path} is {gt.shape[1]}x{gt.shape[0]}, but the result for "
                        f"{input_path} is {img.shape[1]}x{img.shape[0]}")
    return {m.name: m(img, gt) for m in metrics}


if __name__ == "__main__":
    run_cli(main)
