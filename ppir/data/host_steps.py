"""Host-side steps: numpy work a model needs around its network, shared by training, evaluation
and deployment so the three can never disagree.

A step is a function `step(sample, **params) -> sample` on a dict of CHW float32 arrays (the
data layer's names: `input` = the masked or degraded image in [0, 1], `mask` = 1 on holes,
`target` when known), registered by name. A task model lists the steps it needs in its
`io_spec()["host_steps"]` as `{name: ..., **params}`; `tools/export.py` copies that list into
`inference.yml`, and `deploy/infer.py` runs it before feeding the exported graph, by name.

    @HOST_STEPS.register("ctsdg_edges")
    def ctsdg_edges(sample, sigma=2.0, official_wrap=True): ...

    sample = run_host_steps(sample, spec["host_steps"])

Steps register into `HOST_STEPS` (ppir/registry.py) where they are defined (ppir/data/edges.py,
ppir/data/ict_data.py); the ppir.data package imports those modules, so every step is known
here.
"""
from ppir.registry import HOST_STEPS


def run_host_steps(sample, steps):
    """Apply the listed steps (`[{name: ..., **params}, ...]`) in order; returns the new sample."""
    for i, spec in enumerate(steps or ()):
        sample = HOST_STEPS.build(spec, where=f"host_steps[{i}]", sample=dict(sample))
    return sample

