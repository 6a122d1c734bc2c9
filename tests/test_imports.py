"""The package imports downward only: no import circle inside ppir (every import statement
counts, deferred ones inside functions too), losses/ and metrics/ reach into ppir.models only for
the shared feature networks of ppir.models.archs, and every registry is complete once the package
that assembles it is imported."""
import ast
import json
import os
import subprocess
import sys

from tests.conftest import ROOT

# Edges (importer, imported) tolerated for now; each must still exist, so a fixed one fails the
# test until its line here is deleted.
KNOWN_CIRCLE_EDGES = set()
# The `.pth` reader (read_pth) moves from ppir/models/convert.py to ppir/utils/pth.py (issue 17,
# a parallel branch); delete this line with that move.
KNOWN_UPWARD_EDGES = {("ppir.metrics.lpips", "ppir.models.convert")}


def module_files(package_dir):
    """{dotted module name: file} of every .py under `package_dir` (a package's __init__.py is
    the package itself)."""
    top = os.path.dirname(os.path.abspath(package_dir))
    modules = {}
    for folder, _, names in os.walk(package_dir):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, top)[:-3].replace(os.sep, ".")
                modules[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return modules


def _imports(module, is_package, node):
    """What one import statement makes Python run: [(dotted name, reads_package)]. A name that
    is not a module is resolved later to the module defining it, which then counts as read."""
    if isinstance(node, ast.Import):
        return [(alias.name, True) for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: `from . import x` counts from the module's own package
        parts = module.split(".")
        parts = parts if is_package else parts[:-1]
        parts = parts[:len(parts) - node.level + 1]
        base = ".".join(parts + ([node.module] if node.module else []))
    return [(base, False)] + [(f"{base}.{alias.name}", False) for alias in node.names]


def import_graph(package_dir):
    """{module: {modules of the package it imports}}.

    A module importing an enclosing package is a tie only where it reads a name defined in that
    package's __init__ at module level: then the package may still be half-initialised. Taking a
    submodule (`from pkg import sub`) or importing inside a function (which runs after the
    package has finished importing) makes no import order depend on the package."""
    modules = module_files(package_dir)
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target, reads_package in _imports(name, path.endswith("__init__.py"), node):
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                    reads_package = True
                if not target or target == name:
                    continue
                if name.startswith(target + ".") and not (reads_package and id(node) in top_level):
                    continue
                graph[name].add(target)
    return graph


def circles(graph):
    """The import circles: sorted lists of modules that all reach each other (size > 1)."""
    def reachable(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reach = {name: reachable(name) for name in graph}
    found = {tuple(sorted({name} | {other for other in reach[name] if name in reach[other]}))
             for name in graph if name in reach[name]}
    return sorted(list(c) for c in found)


def inside(name, package):
    return name == package or name.startswith(package + ".")


def without(graph, edges):
    return {name: {t for t in targets if (name, t) not in edges} for name, targets in graph.items()}


PPIR = import_graph(os.path.join(ROOT, "ppir"))


def test_the_walk_finds_deferred_relative_and_top_level_parent_circles(tmp_path):
    """The checker itself: a circle closed by an import inside a function, one through a
    relative import, and a package whose module reads a name of its __init__ at module level are
    all found; a deferred import of the enclosing package, or taking a sibling submodule through
    it, is not a circle."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "def f():\n    from pkg import b\n",
        "b.py": "from .a import f\n",
        "sub/__init__.py": "from pkg.sub import c, d, e\n",
        "sub/c.py": "from pkg.sub import REGISTRY\n",
        "sub/d.py": "def g():\n    from pkg.sub import REGISTRY\n",
        "sub/e.py": "from pkg.sub import d\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    assert circles(import_graph(str(pkg))) == [["pkg.a", "pkg.b"], ["pkg.sub", "pkg.sub.c"]]


def test_ppir_has_no_import_circle():
    found = circles(without(PPIR, KNOWN_CIRCLE_EDGES))
    assert not found, "import circles in ppir:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_losses_and_metrics_import_from_models_only_the_archs():
    """Losses and metrics sit below the models: the feature networks they need (VGG, FID's
    Inception) live in ppir.models.archs, and nothing else of ppir.models is imported."""
    upward = sorted((name, target) for name, targets in without(PPIR, KNOWN_UPWARD_EDGES).items()
                    if inside(name, "ppir.losses") or inside(name, "ppir.metrics")
                    for target in targets
                    if inside(target, "ppir.models") and not inside(target, "ppir.models.archs"))
    assert not upward, f"losses/metrics importing upward into ppir.models: {upward}"


def test_known_exceptions_are_still_needed():
    stale = sorted(edge for edge in KNOWN_CIRCLE_EDGES | KNOWN_UPWARD_EDGES
                   if edge[1] not in PPIR.get(edge[0], ()))
    assert not stale, f"these import edges are gone: delete them from tests/test_imports.py: {stale}"


def test_registries_are_complete_through_the_packages_that_fill_them():
    """Each registry lives in the leaf ppir/registry.py; importing the package that assembles it
    (nothing else, in a fresh interpreter) registers every member, and the public
    `build_network` contract still builds the shared feature networks by name."""
    code = (
        "import json\n"
        "import ppir.data.host_steps, ppir.registry as r\n"
        "out = {'host steps': r.HOST_STEPS.names(), 'datasets': r.DATASETS.names()}\n"
        "from ppir.models import build_network\n"
        "out.update(networks=r.NETWORKS.names(), vgg=type(build_network({'name': 'VGG16'})).__name__)\n"
        "import ppir.losses, ppir.metrics\n"
        "out.update(losses=r.LOSSES.names(), metrics=r.METRICS.names())\n"
        "print(json.dumps(out))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "host steps": ["ctsdg_edges", "ict_tokens"],
        "datasets": ["DemoInpaintingDataset", "DemoPairedDataset", "ICTPriorDataset",
                     "ICTTokenDataset", "InpaintingDataset", "PairedImageDataset"],
        "networks": ["CTSDGDiscriminator", "CTSDGGenerator", "FIDInceptionV3", "ICTTransformer",
                     "ICTUpsampler", "MIMOUNet", "MIMOUNetPlus", "MIRNetV2", "MISFDiscriminator",
                     "MISFGenerator", "VGG16", "VGG19"],
        "vgg": "VGG16Features",
        "losses": ["CharbonnierLoss", "GANLoss", "L1Loss", "MSFRLoss", "PerceptualLoss",
                   "StyleLoss"],
        "metrics": ["FID", "LPIPS", "MAE", "PSNR", "SSIM"]}
