"""The file side of a run over images: which inputs, which masks and ground truths go with them,
where each result is written, and the run's failures. Shared by deploy/infer.py and
tools/predict.py; every output path is checked before any work (nothing lands on what the run
reads, no file ppir did not write is replaced without --overwrite)."""
import os
import sys

from ppir.data.image_io import is_image_file
from ppir.errors import DataError
from ppir.utils.paths import check_outputs, refuse_overlap



def list_inputs(path, what="--input"):
    """One image file, or the sorted images of a folder; DataError if there are none."""
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path) if is_image_file(n))
        if not files:
            raise DataError(f"{what}: no images in folder {path}")
        return files
    raise DataError(f"{what}: no such file or folder: {path}")


def match_files(inputs, path, what):
    """The file in `path` (a file, or a folder searched by name then by stem) for every input."""
    if os.path.isfile(path):
        if len(inputs) != 1:
            raise DataError(f"{what}: {path} is one file but --input has {len(inputs)} images; give a folder")
        return [path]
    if not os.path.isdir(path):
        raise DataError(f"{what}: no such file or folder: {path}")
    by_stem = {}
    for name in sorted(os.listdir(path)):
        if is_image_file(name):
            by_stem.setdefault(os.path.splitext(name)[0], name)
    matched = []
    for src in inputs:
        name = os.path.basename(src)
        if os.path.isfile(os.path.join(path, name)):
            matched.append(os.path.join(path, name))
        elif os.path.splitext(name)[0] in by_stem:
            matched.append(os.path.join(path, by_stem[os.path.splitext(name)[0]]))
        else:
            raise DataError(f"{what}: no file for input {name} in {path}")
    return matched


def default_output_dir(spec):
    """`./output/infer/<model_name>/`: where results go when no --output is given (the TIPC harness
    passes none), a folder of its own so results never land next to or onto the inputs."""
    name = os.path.basename(str(spec["model_name"]).strip().replace("\\", "/").rstrip("/")) or "model"
    if name in (".", ".."):
        name = "model"
    return os.path.join("output", "infer", name, "")


def _check_parents(output):
    """DataError when a folder above `output` is an existing regular file."""
    parent = os.path.dirname(os.path.abspath(output))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
    if parent and not os.path.isdir(parent):
        raise DataError(f"--output {output}: {parent} is a file, not a folder")


def output_paths(inputs, output):
    """Where each result goes: `output` itself for one input and an image-file name, else
    `<output>/<input stem>.png` (PNG, so saving adds no second loss)."""
    _check_parents(output)
    if len(inputs) == 1 and is_image_file(output) and not os.path.isdir(output):
        return [output]
    if os.path.exists(output) and not os.path.isdir(output):
        if len(inputs) == 1:
            raise DataError(f"--output {output} is an existing file without an image extension; "
                            "give an image file name (.png) or a folder")
        raise DataError(f"--output {output} is an existing file, but --input has {len(inputs)} images; give a folder")
    if is_image_file(output) and not os.path.isdir(output):
        raise DataError(f"--output {output} names an image file, but --input has {len(inputs)} images; "
                        "give a folder")
    paths = [os.path.join(output, os.path.splitext(os.path.basename(p))[0] + ".png") for p in inputs]
    dupes = sorted({p for p in paths if paths.count(p) > 1})
    if dupes:
        raise DataError(f"--output: two inputs would both be written to {dupes[0]}")
    return paths


def plan_outputs(source, inputs, output, reads=(), overwrite=False):
    """The output path of every input (listed from `source`, the --input file or folder), checked
    before any work: nothing lands on an input, inside the --input folder or on a path in `reads`
    ((path, flag) pairs, files or folders), and no file ppir did not write is replaced without
    `overwrite`. Creates nothing (`ppir.utils.paths.record_outputs` does, before writing)."""
    paths = output_paths(inputs, output)
    writes = [(p, "--output") for p in paths]
    if paths != [output]:
        writes.insert(0, (output, "--output"))
    refuse_overlap(writes, [(source, "--input")] + list(reads) + [(p, "--input") for p in inputs])
    check_outputs(paths, overwrite)
    return paths


class Failures:
    """The inputs of a run that could not be processed. With one input the error stops the run
    (exit 2 through run_cli); in a folder run each is reported in one line and the run goes on,
    ending with the list and exit code 1."""

    def __init__(self, total):
        self.total, self.paths = total, []

    def add(self, path, exc):
        if self.total == 1:
            if path in str(exc):
                raise exc
            raise type(exc)(f"{path}: {exc}") from None
        self.paths.append(path)
        print(f"skipped {path}: {exc}", file=sys.stderr, flush=True)

    def exit_code(self):
        if not self.paths:
            return 0
        print(f"error: {len(self.paths)} of {self.total} images failed: {', '.join(self.paths)}",
              file=sys.stderr, flush=True)
        return 1


