"""One predictor factory for every exported graph and every backend.

`create_predictor(model_dir, record, inputs, **options)` opens one graph of an export folder
(`ppir.inference.spec.graph_record`) with Paddle Inference (CPU with oneDNN on or off, optionally
bf16; GPU, optionally TensorRT) or onnxruntime, and returns a `Predictor` whose `run({name:
array})` returns the graph's first output as numpy. Set-up follows PaddleSeg's
deploy/python/infer.py: a base config, then a CPU or GPU set-up method; the Paddle workarounds
(passes, threads, log noise) live here once, for every model, ICT's graphs included.
"""
import os
import shutil

import numpy as np

from ppir.errors import ConfigError, ExportError
from ppir.inference import spec as specs

BACKENDS = ("paddle", "onnxruntime")
DEVICES = ("cpu", "gpu")
PRECISIONS = ("fp32", "fp16", "bf16")


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


def check_options(backend="paddle", device="cpu", enable_mkldnn=True, precision="fp32", use_tensorrt=False):
    """ConfigError for a combination no backend can run, before anything is loaded."""
    if device not in DEVICES:
        raise ConfigError(f"--device must be cpu or gpu, got {device!r}")
    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be paddle or onnxruntime, got {backend!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if backend == "onnxruntime" and precision != "fp32":
        raise ConfigError("--backend onnxruntime runs the fp32 ONNX model; use --precision fp32")
    if use_tensorrt and (device != "gpu" or backend != "paddle"):
        raise ConfigError("--use_tensorrt needs --device gpu with --backend paddle")
    if backend == "paddle" and device == "cpu":
        if precision == "fp16":
            raise ConfigError("--precision fp16 needs --device gpu (Paddle has no fp16 CPU kernels)")
        if precision == "bf16" and not enable_mkldnn:
            raise ConfigError("--precision bf16 on CPU needs --enable_mkldnn True")
        if precision == "bf16" and not cpu_has_bf16():
            # Measured on an AVX2-only CPU: oneDNN silently runs fp32 (bit-identical output).
            raise ConfigError("--precision bf16 needs a CPU with AVX512-BF16 or AMX; this one has "
                              "neither, and Paddle would silently run fp32: use --precision fp32")
    if device == "gpu" and precision == "bf16":
        raise ConfigError("--precision bf16 is a CPU (oneDNN) option; use fp32 or fp16 on GPU")
    if backend == "paddle" and device == "gpu":
        import paddle

        # A CPU build only logs "Please use PaddlePaddle with GPU version" and runs on CPU.
        if not paddle.is_compiled_with_cuda():
            raise ConfigError("--device gpu needs a CUDA build of paddlepaddle (paddlepaddle-gpu); "
                              f"paddle {paddle.__version__} here is CPU-only")


def describe(backend, device="cpu", enable_mkldnn=True, precision="fp32", use_tensorrt=False):
    """The path in words, as printed and returned by the API (`last_run['path']`)."""
    if backend == "onnxruntime":
        return f"onnxruntime ({device})"
    if device == "gpu":
        return f"Paddle Inference (GPU{', TensorRT' if use_tensorrt else ''}, {precision})"
    return f"Paddle Inference (CPU, oneDNN {'on' if enable_mkldnn else 'off'}, {precision})"


def create_predictor(model_dir, record, inputs, backend="paddle", device="cpu", enable_mkldnn=True,
                     cpu_threads=None, precision="fp32", use_tensorrt=False, batch_size=1,
                     tune_shapes=None):
    """A `Predictor` for the graph `record` describes (files relative to `model_dir`).

    `inputs`: the graph's inputs as inference.yml lists them ({name, channels, value_range}); the
    loaded graph must take exactly these names. `tune_shapes`: NCHW shapes of the concatenated
    inputs, for TensorRT's shape range."""
    enable_mkldnn = bool(enable_mkldnn) and device == "cpu"
    check_options(backend, device, enable_mkldnn, precision, use_tensorrt)
    options = dict(model_dir=model_dir, record=record, inputs=inputs, device=device,
                   enable_mkldnn=enable_mkldnn, cpu_threads=int(cpu_threads or default_cpu_threads()),
                   precision=precision, use_tensorrt=bool(use_tensorrt), batch_size=batch_size)
    if backend == "onnxruntime":
        return OnnxPredictor(**options)
    return PaddlePredictor(tune_shapes=tune_shapes, **options)


def open_graph(model_dir, stage=None, **options):
    """A predictor of one graph of an export folder: its only graph, or the stage `stage` of a
    multi-graph export; `options` as `create_predictor`."""
    spec = specs.load_spec(model_dir)
    record = specs.graph_record(spec, stage)
    inputs = spec["inputs"] if stage is None else [{"name": n} for n in record.get("graph_inputs") or ()]
    return create_predictor(model_dir, record, inputs, **options)


class Predictor:
    """A loaded graph: `run({input name: array})` -> its first output (numpy)."""

    backend = None

    def __init__(self, model_dir, record, inputs, device, enable_mkldnn, cpu_threads, precision,
                 use_tensorrt, batch_size):
        self.model_dir, self.record, self.inputs = model_dir, record, list(inputs)
        self.device, self.enable_mkldnn, self.cpu_threads = device, enable_mkldnn, cpu_threads
        self.precision, self.use_tensorrt, self.batch_size = precision, use_tensorrt, batch_size

    @property
    def path(self):
        return describe(self.backend, self.device, self.enable_mkldnn, self.precision, self.use_tensorrt)

    def _check_graph_inputs(self, names):
        expected = [item["name"] for item in self.inputs]
        if sorted(names) != sorted(expected):
            raise ExportError(f"{self.model_dir}: the model's inputs {names} do not match inference.yml "
                              f"inputs {expected}; re-export it")

    def run_concat(self, x):
        """Run on one NCHW float32 array holding the inputs concatenated along channels."""
        return self.run(specs.split_inputs(np.ascontiguousarray(x, dtype=np.float32), self.inputs))

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


class PaddlePredictor(Predictor):
    backend = "paddle"

    def __init__(self, tune_shapes=None, **options):
        super().__init__(**options)
        from paddle import inference

        model_file, params_file = specs.paddle_model_files(self.model_dir, self.record)
        if self.use_tensorrt and model_file.endswith(".json"):
            model_file, params_file = self._pir_tensorrt_model(model_file, tune_shapes)
        config = self._base_config(model_file, params_file)
        if self.device == "gpu":
            self._gpu_config(config, tune_shapes, legacy=model_file.endswith(".pdmodel"))
        else:
            self._cpu_config(config)
        try:
            self.predictor = inference.create_predictor(config)
        except Exception as exc:  # a corrupt or truncated model file: Paddle raises assorted types
            raise ExportError(f"cannot load the model {model_file} + {params_file} (corrupt or "
                              f"incomplete export?): {short_reason(exc)}") from None
        self._check_graph_inputs(self.predictor.get_input_names())
        self.output_name = self.predictor.get_output_names()[0]
        self._output = self.predictor.get_output_handle(self.output_name)

    def _base_config(self, model_file, params_file):
        from paddle import inference

        config = inference.Config(model_file, params_file)
        # PIR pass banners go to std::cout; GLOG_minloglevel does not silence them, this does.
        config.disable_glog_info()
        config.switch_ir_optim(True)
        # No enable_memory_optim(): it fails for every PIR model on Paddle 3.0-3.3
        # ("Not find predictor_id 0 and pass_name memory_optimize_pass", pass_result_info.h:48).
        return config

    def _cpu_config(self, config):
        import paddle

        config.disable_gpu()
        config.set_cpu_math_library_num_threads(self.cpu_threads)
        if self.enable_mkldnn:
            # The mkldnn spellings exist on 3.0-3.3; the onednn ones only from 3.1.
            config.enable_mkldnn()
            if self.precision == "bf16":
                config.enable_mkldnn_bfloat16()
            for name in onednn_passes_to_delete(paddle.__version__):
                config.delete_pass(name)
        else:
            config.disable_mkldnn()  # oneDNN is on by default from Paddle 3.3

    # GPU and TensorRT: untested here (CPU-only machines); needs paddlepaddle-gpu, whose 3.x wheels
    # are on Paddle's own package index. See docs/deploy.md.

    def _gpu_config(self, config, tune_shapes, legacy):
        """Plain GPU, or TensorRT through Paddle Inference's subgraph engine for a legacy .pdmodel
        (a PIR model was already converted by `_pir_tensorrt_model`)."""
        from paddle import inference

        half = inference.PrecisionType.Half
        precision = half if self.precision == "fp16" else inference.PrecisionType.Float32
        if not (self.use_tensorrt and legacy):
            config.enable_use_gpu(256, 0, inference.PrecisionType.Float32 if self.use_tensorrt else precision)
            return
        config.enable_use_gpu(256, 0)
        shape_file = os.path.join(self.model_dir, specs.SHAPE_RANGE_FILE)
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

        config = self._base_config(*specs.paddle_model_files(self.model_dir, self.record))
        config.enable_use_gpu(256, 0)
        config.collect_shape_range_info(shape_file)
        predictor = inference.create_predictor(config)
        for shape in sorted(set(tuple(s) for s in shapes)):
            for name, part in specs.split_inputs(np.zeros(shape, dtype=np.float32), self.inputs).items():
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
                                 name=item["name"]) for item in self.inputs]
            mode = PrecisionMode.FP16 if self.precision == "fp16" else PrecisionMode.FP32
            convert(os.path.splitext(model_file)[0],
                    TensorRTConfig(inputs=spec_inputs, precision_mode=mode, save_model_dir=prefix))
            with open(record, "w") as f:
                yaml.safe_dump({"min": list(low), "max": list(high)}, f)
        return prefix + ".json", prefix + ".pdiparams"

    def run(self, feeds):
        for name, x in feeds.items():
            handle = self.predictor.get_input_handle(name)
            handle.reshape(list(x.shape))
            handle.copy_from_cpu(np.ascontiguousarray(x))
        self.predictor.run()
        return self._output.copy_to_cpu()


class OnnxPredictor(Predictor):
    backend = "onnxruntime"

    def __init__(self, **options):
        super().__init__(**options)
        import onnxruntime as ort

        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = self.cpu_threads
        session_options.inter_op_num_threads = 1
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.log_severity_level = 3  # paddle2onnx leaves unused initializers; ORT warns per tensor
        providers = ["CPUExecutionProvider"]
        if self.device == "gpu":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError("--device gpu with onnxruntime needs onnxruntime-gpu (CUDAExecutionProvider)")
            providers.insert(0, "CUDAExecutionProvider")
        model_file = specs.onnx_model_file(self.model_dir, self.record)
        try:
            self.session = ort.InferenceSession(model_file, session_options, providers=providers)
        except Exception as exc:  # onnxruntime's own exception types
            raise ExportError(f"cannot load the ONNX model {model_file} (corrupt or incomplete export?): "
                              f"{short_reason(exc)}") from None
        self._check_graph_inputs([i.name for i in self.session.get_inputs()])

    def run(self, feeds):
        return self.session.run(None, {k: np.ascontiguousarray(v) for k, v in feeds.items()})[0]
