"""Every `python tools/...` and `python deploy/...` command in README.md and docs/ parses with that
script's own argparse parser (its `parse_args(argv)`; nothing runs), a `-c` config under configs/
exists, and its -o overrides are keys that config accepts. A renamed or removed flag, or a config
that moved, fails here instead of in a user's terminal.

Commands are taken from fenced code blocks (whole lines, `\\` continuations joined) and from inline
`code` spans elsewhere; shell operators (&&, |, ;) end a command; `[...]` optional parts and `...`
of synopsis lines are dropped; $VARIABLES and placeholders (CFG, W, DIR) stay as plain strings.
"""
import argparse
import glob
import importlib.util
import os
import re
import shlex

import pytest

from tests.conftest import ROOT

DOCS = ["README.md"] + sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
SCRIPT = re.compile(r"^(?:tools|deploy)/\w+\.py$")
FENCE = re.compile(r"^\s*```")
INLINE = re.compile(r"`([^`\n]+)`")
OPTIONAL = re.compile(r"\[[^\[\]]*\]")
OPERATORS = {"&&", "||", "|", ";", ">", ">>", "2>&1", "&"}


def _shell_lines(text):
    """Shell text of a markdown file: code-block lines (continuations joined) and inline spans."""
    lines, in_block, pending = [], False, ""
    for line in text.splitlines():
        if FENCE.match(line):
            in_block, pending = not in_block, ""
            continue
        if in_block:
            pending += line.rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            lines.append(pending)
            pending = ""
        else:
            lines += INLINE.findall(line)
    return lines


def _commands(line):
    """(script, argv) of each `python [-m paddle.distributed.launch ...] tools|deploy/x.py ...`."""
    line = OPTIONAL.sub(" ", line).replace("...", " ")
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote: prose, not a command
        return []
    found = []
    for i, token in enumerate(tokens):
        if SCRIPT.match(token) and "python" in " ".join(tokens[:i]).split("&&")[-1]:
            argv = []
            for arg in tokens[i + 1:]:
                if arg in OPERATORS:
                    break
                argv.append(arg)
            found.append((token, argv))
    return found


def documented_commands():
    out = []
    for doc in DOCS:
        path = doc if os.path.isabs(doc) else os.path.join(ROOT, doc)
        with open(path, encoding="utf-8") as f:
            for line in _shell_lines(f.read()):
                for script, argv in _commands(line):
                    out.append(pytest.param(script, argv, id=f"{os.path.relpath(path, ROOT)}: {script} "
                                                             f"{' '.join(argv)}"[:150]))
    return out


_MODULES = {}


def _module(script):
    if script not in _MODULES:
        spec = importlib.util.spec_from_file_location(f"ppir_docs_{script.replace('/', '_')[:-3]}",
                                                      os.path.join(ROOT, script))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _MODULES[script] = module
    return _MODULES[script]


def test_the_docs_hold_commands():
    """The extractor finds the commands (a broken extractor would pass everything below)."""
    scripts = {p.values[0] for p in documented_commands()}
    assert {"tools/train.py", "tools/eval.py", "tools/export.py", "deploy/infer.py",
            "tools/convert_weights.py"} <= scripts


@pytest.mark.parametrize("script, argv", documented_commands())
def test_documented_command_parses(script, argv):
    module = _module(script)
    assert hasattr(module, "parse_args"), f"{script} has no parse_args(argv)"
    try:
        args = module.parse_args(argv)
    except (SystemExit, argparse.ArgumentError) as exc:  # SystemExit: argparse printed the reason
        pytest.fail(f"{script} {' '.join(argv)}: argparse refused it ({exc})")
    config = getattr(args, "config", None)
    if isinstance(config, str) and config.startswith("configs/") and not set("<$") & set(config):  # a placeholder
        from ppir.config import load_config

        assert os.path.isfile(os.path.join(ROOT, config)), f"{config} does not exist"
        overrides = list(getattr(args, "override", []) or []) + list(getattr(args, "extra_overrides", []) or [])
        cwd = os.getcwd()
        try:
            os.chdir(ROOT)
            load_config(config, [o for o in overrides if "$" not in o])
        finally:
            os.chdir(cwd)
