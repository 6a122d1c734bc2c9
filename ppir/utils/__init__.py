"""Helpers shared by evaluation and deployment: tiling, self-ensemble, inference I/O, device
set-up and the AutoLog-format benchmark log. Nothing here imports paddle at module import time,
so the onnxruntime path of `deploy/infer.py` stays light."""
