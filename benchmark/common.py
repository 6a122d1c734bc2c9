"""What the benchmark scripts share: the input photo, the timing loop and the machine line."""
import os
import platform
import time

import numpy as np


def photo(width, height):
    """HWC float32 in [0, 1]: the centre crop of scikit-image's astronaut photo (real image
    statistics, nothing downloaded), resized up first when the size is larger than the photo."""
    import cv2
    from skimage import data

    img = data.astronaut()
    h, w = img.shape[:2]
    if width > w or height > h:
        scale = max(width / w, height / h)
        img = cv2.resize(img, (int(np.ceil(w * scale)), int(np.ceil(h * scale))), interpolation=cv2.INTER_CUBIC)
        h, w = img.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    return np.ascontiguousarray(img[top:top + height, left:left + width], dtype=np.float32) / 255.0


def timed(fn, x, repeat, warmup):
    """(last output, [seconds of each of `repeat` calls]) after `warmup` untimed calls."""
    out = None
    for _ in range(warmup):
        out = fn(x)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(x)
        times.append(time.perf_counter() - start)
    return out, times


def machine_info():
    """CPU model, visible cores, library versions and thread settings, in one line."""
    import onnxruntime
    import paddle

    cpu = platform.processor() or "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    threads = ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
    return (f"{cpu}, {cores} cores visible; Python {platform.python_version()}, paddlepaddle {paddle.__version__}, "
            f"onnxruntime {onnxruntime.__version__}; {threads}")
