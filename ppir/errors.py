"""Errors that reach users as one line, and the wrapper that turns them into an exit code.

Library code raises; only entry points print. Every message names the thing that is wrong
(the file, the config key, the tensor shape) and, where it helps, what was expected.
"""
import sys


class PpirError(Exception):
    """Base of every error ppir reports to a user as a single line."""


class ConfigError(PpirError):
    """A config file, a `_base_` reference or a `-o` override is wrong."""


class DataError(PpirError):
    """An image, mask, folder or pair cannot be used as given."""


class CheckpointError(PpirError):
    """A checkpoint is missing, incomplete, or does not fit the network."""


class ExportError(PpirError):
    """An export directory is incomplete or an exported model disagrees with dygraph."""


class Interrupted(PpirError):
    """A run stopped on request (SIGINT/SIGTERM) after saving what it could; exits 128 + signal."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.exit_code = 128 + int(signum)


def run_cli(main, argv=None):
    """Run an entry point: a PpirError becomes `error: <message>` on stderr and exit code 2.

    Anything else keeps its traceback, because that is a bug in ppir rather than bad input.
    """
    try:
        code = main(argv)
    except Interrupted as exc:
        print(f"stopped: {exc}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
    except PpirError as exc:
        message = " ".join(str(exc).split("\n"))
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    sys.exit(code or 0)
