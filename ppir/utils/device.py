"""Device set-up shared by training, evaluation, export and prediction."""


def setup_device(device):
    """Select `device` ('cpu', 'gpu', 'gpu:1', ... or 'auto': the GPU when Paddle is built with
    CUDA and sees one, else the CPU) for every paddle op that follows; returns the chosen name."""
    import paddle  # deferred: ppir.utils stays importable without paddle (onnxruntime serving)

    if device == "auto":
        has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
        device = "gpu" if has_gpu else "cpu"
    paddle.set_device(device)
    return device
