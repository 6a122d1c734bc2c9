"""An in-house stand-in for AutoLog (`auto_log.AutoLogger`), which is not installable from PyPI.

TIPC's benchmark tooling reads the block AutoLog prints, so `AutoLogger.report()` reproduces it
line for line (LDOUBLEV/AutoLog 1.2.0, `auto_log/autolog.py`): the same six sections with the same dash counts, the same
keys, times as mean milliseconds rounded to 4 places, each line formatted
`[%Y/%m/%d %H:%M:%S] root INFO: <message>`. Differences, all deliberate:
- it never calls `sys.exit` (AutoLog's HEAD does, which kills whatever follows the report);
- memory is sampled by a daemon thread (psutil, or /proc when psutil is missing) instead of a
  spawned process; `cpu_rss(MB)` is the mean of the samples, `peak_rss_mb` holds the maximum;
- `enable_memory_optim` prints the real setting when the caller passes a dict (AutoLog prints a
  hard-coded True; ppir never enables it, because it fails on Paddle 3 PIR models);
- it writes straight to stdout (and `save_path`) rather than adding handlers to the root logger.

Timing follows AutoLog's `Times`: `start()` → work → `stamp()` (preprocess_time) → work →
`stamp()` (inference_time) → work → `end(stamp=True)` (postprocess_time and the total).
"""
import os
import platform
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

TIME_KEYS = ("preprocess_time", "inference_time", "postprocess_time")
_CONF_KEYS = ("runtime_device", "ir_optim", "enable_memory_optim", "enable_tensorrt", "enable_mkldnn",
              "cpu_math_library_num_threads")


class Times:
    """Per-key durations of repeated start/stamp/end cycles; means skip the first `warmup`."""

    def __init__(self, keys=TIME_KEYS, warmup=0):
        self.keys = list(keys)
        self.warmup = int(warmup)
        self.times = {k: [] for k in self.keys}
        self.total_time = []
        self._stamps = []

    def start(self):
        self._stamps = [time.perf_counter()]

    def stamp(self):
        if not self._stamps:
            self.start()
        self._stamps.append(time.perf_counter())
        index = len(self._stamps) - 2
        if index >= len(self.keys):  # more stamps than keys: extra keys as AutoLog names them
            self.keys.append(f"stamps_{index + 1}")
            self.times[self.keys[-1]] = []
        self.times[self.keys[index]].append(self._stamps[-1] - self._stamps[-2])

    def end(self, stamp=False):
        if stamp:
            self.stamp()
        self.total_time.append(self._stamps[-1] - self._stamps[0])
        self._stamps = []

    @property
    def count(self):
        return len(self.total_time)

    def _after_warmup(self, values, what):
        if len(values) <= self.warmup:
            raise ValueError(f"{what}: {len(values)} samples, need more than warmup={self.warmup}")
        return values[self.warmup:]

    def mean(self, key):
        return float(np.mean(self._after_warmup(self.times[key], key)))

    def total(self):
        return float(np.sum(self._after_warmup(self.total_time, "total time")))


def _rss_mb(pid):
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    return None


def _gpu_sample(gpu_id):
    """(memory.used MB, utilization %) from nvidia-smi, or None when there is no GPU."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,utilization.gpu",
                              "--format=csv,noheader,nounits", "-i", str(gpu_id)],
                             capture_output=True, text=True, timeout=5, check=True).stdout
        used, util = (float(v) for v in out.strip().splitlines()[0].split(","))
        return used, util
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


class _Sampler(threading.Thread):
    """Samples process RSS (and GPU memory/utilisation when asked) every `interval` seconds."""

    def __init__(self, pid, gpu_id, interval):
        super().__init__(daemon=True)
        self.pid, self.gpu_id, self.interval = pid, gpu_id, interval
        self.rss, self.gpu = [], []
        self._stop_event = threading.Event()

    def sample(self):
        rss = _rss_mb(self.pid)
        if rss is not None:
            self.rss.append(rss)
        if self.gpu_id is not None:
            gpu = _gpu_sample(self.gpu_id)
            if gpu is not None:
                self.gpu.append(gpu)

    def run(self):
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self):
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=2 * self.interval + 5)
        self.sample()


def _os_version():
    if platform.system() == "Linux" and os.path.exists("/etc/os-release"):
        fields = {}
        with open("/etc/os-release") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                fields[key] = value.strip('"')
        return f"{fields.get('NAME')} {fields.get('VERSION_ID')}"
    if platform.system() == "Darwin":
        return f"macOs {platform.mac_ver()[0]}"
    return f"{platform.system()} {platform.release()}"


def _paddle_info():
    """(version, commit, cuda, cudnn); 'None' strings when paddle is not importable."""
    try:
        import paddle
    except ImportError:
        return "None", "None", None, None
    cuda = paddle.version.cuda() if paddle.is_compiled_with_cuda() else None
    cudnn = paddle.version.cudnn() if paddle.is_compiled_with_cuda() else None
    return paddle.__version__, paddle.version.commit, cuda, cudnn


def _driver_version():
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
        return out.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


def parse_inference_config(config):
    """Conf-info values from a paddle.inference.Config, a dict with those keys, or None."""
    if config is None:
        return {k: "None" for k in _CONF_KEYS}
    if isinstance(config, dict):
        return {k: config.get(k) for k in _CONF_KEYS}
    return {
        "runtime_device": "gpu" if config.use_gpu() else "cpu",
        "ir_optim": config.ir_optim(),
        "enable_memory_optim": None,  # Config has no getter for it
        "enable_tensorrt": config.tensorrt_engine_enabled(),
        "enable_mkldnn": config.mkldnn_enabled(),
        "cpu_math_library_num_threads": config.cpu_math_library_num_threads(),
    }


class AutoLogger:
    """Drop-in for `auto_log.AutoLogger` (same constructor arguments, `.times`, `.report()`)."""

    def __init__(self, model_name, model_precision="fp32", batch_size=1, data_shape="dynamic",
                 save_path=None, inference_config=None, pids=None, process_name=None, gpu_ids=None,
                 time_keys=TIME_KEYS, warmup=0, logger=None, interval=0.2, stream=None):
        self.model_name = model_name
        self.precision = model_precision
        self.batch_size = batch_size
        self.data_shape = data_shape
        self.save_path = save_path
        self.config_status = parse_inference_config(inference_config)
        self.logger = logger
        self.stream = stream
        self.times = Times(keys=time_keys, warmup=warmup)
        self.peak_rss_mb = None
        if gpu_ids == "auto":
            gpu_ids = int((os.environ.get("CUDA_VISIBLE_DEVICES") or "0")[0])
        self.gpu_ids = gpu_ids
        self._sampler = _Sampler(pids or os.getpid(), gpu_ids, interval)
        self._sampler.start()

    def _emit(self, lines):
        if self.logger is not None:
            for line in lines:
                self.logger.info(line)
            return
        stamp = time.strftime("%Y/%m/%d %H:%M:%S")
        text = "".join(f"[{stamp}] root INFO: {line}\n" for line in lines)
        (self.stream or sys.stdout).write(text)
        (self.stream or sys.stdout).flush()
        if self.save_path:
            folder = os.path.dirname(self.save_path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            with open(self.save_path, "a") as f:
                f.write(text)

    def report(self, identifier=None):
        """Print the AutoLog block and return its messages (without the time/level prefix)."""
        prefix = f"[{identifier}]" if identifier else ""
        self._sampler.stop()
        rss = self._sampler.rss
        cpu_rss = round(float(np.mean(rss)), 4) if rss else None
        self.peak_rss_mb = round(float(np.max(rss)), 4) if rss else None
        gpu = self._sampler.gpu
        gpu_rss = max(g[0] for g in gpu) if gpu else None
        gpu_util = max(g[1] for g in gpu) if gpu else None
        version, commit, cuda, cudnn = _paddle_info()
        conf = self.config_status
        ms = {k: round(self.times.mean(k) * 1000, 4) for k in TIME_KEYS}
        lines = [
            "\n",
            "---------------------- Env info ----------------------",
            f"{prefix} OS_version: {_os_version()}",
            f"{prefix} CUDA_version: {cuda}",
            f"{prefix} CUDNN_version: {cudnn}",
            f"{prefix} drivier_version: {_driver_version()}",  # sic: AutoLog's spelling
            "---------------------- Paddle info ----------------------",
            f"{prefix} paddle_version: {version}",
            f"{prefix} paddle_commit: {commit}",
            f"{prefix} log_api_version: 1.0",
            "----------------------- Conf info -----------------------",
            *(f"{prefix} {k}: {conf[k]}" for k in _CONF_KEYS),
            "----------------------- Model info ----------------------",
            f"{prefix} model_name: {self.model_name}",
            f"{prefix} precision: {self.precision}",
            "----------------------- Data info -----------------------",
            f"{prefix} batch_size: {self.batch_size}",
            f"{prefix} input_shape: {self.data_shape}",
            f"{prefix} data_num: {self.times.count}",
            "----------------------- Perf info -----------------------",
            f"{prefix} cpu_rss(MB): {cpu_rss}, gpu_rss(MB): {gpu_rss}, gpu_util: {gpu_util}%",
            f"{prefix} total time spent(s): {round(self.times.total(), 4)}",
            f"{prefix} preprocess_time(ms): {ms['preprocess_time']}, "
            f"inference_time(ms): {ms['inference_time']}, postprocess_time(ms): {ms['postprocess_time']}",
        ]
        self._emit(lines)
        return lines
