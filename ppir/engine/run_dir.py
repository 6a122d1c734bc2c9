"""One training run per output directory, at a time and over time.

* At a time: the run holds an exclusive `fcntl` lock on `<output_dir>/.lock` for its whole
  lifetime. The kernel drops the lock when the process ends, however it ends (crash, SIGKILL),
  so a stale lock file never blocks the next run; a second run into the same directory while the
  first is alive is refused with one line naming the holder's PID.
* Over time: a directory that already holds checkpoints belongs to an earlier run. Starting a new
  run there would overwrite its `iter_N` and re-point its `latest` and `best_model`, so it is
  refused unless the user resumes it (`--resume` / `--auto_resume`) or asks for the old run to be
  moved aside (`--archive_existing`: renamed to `<output_dir>.archived-<N>`, N the next free
  number; nothing is deleted).
"""
import fcntl
import os
import re

from ppir.errors import ConfigError, PpirError

LOCK_FILE = ".lock"
_CHECKPOINT_NAME = re.compile(r"^(iter_\d+|latest|best_model)$")


class RunDirBusy(PpirError):
    """Another live training run holds the output directory."""


def holds_run(output_dir):
    """True when `output_dir` holds checkpoints (or links to them) of an earlier run."""
    if not os.path.isdir(output_dir):
        return False
    return any(_CHECKPOINT_NAME.match(name) for name in os.listdir(output_dir))


def archive_run(output_dir):
    """Rename `output_dir` to `<output_dir>.archived-<N>` (first free N); returns the new path."""
    base = os.path.normpath(output_dir)
    n = 1
    while os.path.lexists(f"{base}.archived-{n}"):
        n += 1
    target = f"{base}.archived-{n}"
    os.rename(base, target)
    return target


class RunLock:
    """Exclusive lock on an output directory for the life of this process (or until release())."""

    def __init__(self, output_dir):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, LOCK_FILE)
        self._fd = None

    def acquire(self):
        try:
            os.makedirs(self.output_dir, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot write to Global.output_dir {self.output_dir}: "
                              f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirBusy(f"{self.output_dir} is in use by another training run (pid {holder}); "
                             f"wait for it to end or set another Global.output_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def claim_output_dir(output_dir, resuming, archive_existing=False):
    """Lock `output_dir` for a new or resumed run; refuse to start a new run over an old one.

    Returns (lock, archived_path_or_None).
    """
    lock = RunLock(output_dir).acquire()
    if resuming or not holds_run(output_dir):
        return lock, None
    if not archive_existing:
        lock.release()
        raise ConfigError(
            f"{output_dir} already holds a training run (checkpoints "
            f"{', '.join(sorted(n for n in os.listdir(output_dir) if _CHECKPOINT_NAME.match(n)))}); "
            f"continue it with --auto_resume, keep it and start over with --archive_existing, "
            f"or write elsewhere with -o Global.output_dir=DIR")
    # The lock travels with the renamed directory; the new directory gets a lock of its own.
    archived = archive_run(output_dir)
    new_lock = RunLock(output_dir).acquire()
    lock.release()
    return new_lock, archived
