"""Fault injection for the reliability tests: kill this process at a named point.

`PPIR_FAULT=save:4:weights,step:3:rank1` makes the process SIGKILL itself when it reaches
checkpoint save of iteration 4 after writing the weights, or rank 1 at the start of iteration 3.
Unset (always, outside tests) it costs one dict lookup.
"""
import os
import signal


def fault_point(tag):
    wanted = os.environ.get("PPIR_FAULT")
    if wanted and tag in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
