"""Inference as a library: load an export (or a config and its weights) and call it on images.

    import ppir
    model = ppir.load("inference/misf_celeba")
    out = model("photo.png", mask="hole.png")

Modules: `spec` (the export-folder contract), `predictor` (one predictor factory for every
backend), `paths` (which verified path runs an input of a given size), `host` (images and masks
in, graph inputs, outputs back), `export` (trace, check, time, commit), `ict` (ICT's sampling
loop around its two graphs), `files` (the file side of command-line runs), `progress`, and
`api` (`load` and the models it returns). docs/api.md has the guide.
"""
from ppir.inference.api import DygraphModel, ExportedICT, ExportedModel, Model, load

__all__ = ["load", "Model", "ExportedModel", "ExportedICT", "DygraphModel"]
