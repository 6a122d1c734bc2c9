"""Where ppir may write: never onto or into what it reads, never over a file it did not write.

Every entry point that writes files (deploy/infer.py, tools/eval.py, tools/predict.py,
tools/convert_weights.py, tools/export.py) calls these before any work, so a mistyped flag costs
one `error:` line instead of a dataset or an official checkpoint.

* `refuse_overlap`: paths are compared as real paths (symlinks, `..`, the same file spelt twice,
  hard links), and a written file may neither be a file that is read nor lie inside a folder
  that is read.
* `check_outputs` / `record_outputs`: an existing file is replaced only if ppir wrote it (its
  name is listed in the `.ppir-outputs` marker of its folder, written before the files) or the
  user passed --overwrite, so re-running a command into its own previous output folder works,
  and an unrelated file does not disappear.
* `check_output_file` / `write_output_file`: the three above for one side output (a scores
  JSON, a benchmark table): checked before any work, recorded and written atomically at the end.
"""
import errno
import os

from ppir.errors import DataError

MARKER = ".ppir-outputs"


def real(path):
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def is_inside(path, folder):
    """True if `path` is `folder` or lies below it, comparing real paths."""
    return _below(real(path), real(folder))


def _below(resolved, resolved_folder):
    """`resolved` is the folder or lies below it (both real paths)."""
    return resolved == resolved_folder or resolved.startswith(resolved_folder.rstrip(os.sep) + os.sep)


def _inode(real_path):
    try:
        st = os.stat(real_path)
    except OSError:  # does not exist (yet)
        return None
    return st.st_dev, st.st_ino


def refuse_overlap(writes, reads, removes=()):
    """DataError if a written path is a read file (also under another name: a symlink, `..`, a
    hard link), or lies in a read folder, or a read path lies in a folder that is removed.

    `writes`, `reads` and `removes` are (path, label) pairs, e.g. ("out/", "--output"); a read
    path may be a file or a folder (a folder protects everything below it); `None` paths are
    skipped. Each path is resolved once, so thousands of images cost milliseconds.
    """
    files, inodes, folders = {}, {}, []
    for path, label in reads:
        if path is None:
            continue
        resolved = real(path)
        if os.path.isdir(resolved):
            folders.append((resolved, path, label))
        else:
            files.setdefault(resolved, (path, label))
            inodes.setdefault(_inode(resolved), (path, label))
    inodes.pop(None, None)
    for folder, label in removes:
        for resolved, (path, src_label) in list(files.items()) + [(f, (p, lb)) for f, p, lb in folders]:
            if _below(resolved, real(folder)):
                raise DataError(f"{label} would remove {folder}, which holds the {src_label} {path}; "
                                "move it out or choose another output")
    for path, label in writes:
        if path is None:
            continue
        if not os.fspath(path).strip():
            raise DataError(f"{label} is empty; give a path")
        resolved = real(path)
        for folder, src, src_label in folders:
            if _below(resolved, folder):
                where = "is" if resolved == folder else "lies inside"
                raise DataError(f"{label} {path} {where} the {src_label} folder {src}: refusing to write "
                                "into data ppir reads; choose another output")
        hit = files.get(resolved) or inodes.get(_inode(resolved))
        if hit:
            raise DataError(f"{label} {path} is the {hit[1]} file {hit[0]}: refusing to overwrite "
                            "what ppir reads; choose another output")


def written_by_ppir(folder):
    """Names listed in `folder`'s marker (the files ppir wrote there)."""
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            return {line.rstrip("\n") for line in f if line.strip()}
    except FileNotFoundError:
        return set()


def _by_folder(paths):
    by_folder = {}
    for path in paths:
        by_folder.setdefault(os.path.dirname(os.path.abspath(path)), []).append(os.path.basename(path))
    return by_folder


def check_outputs(paths, overwrite=False, what="--output"):
    """DataError if a path in `paths` is a folder, sits under a file, or is an existing file that
    ppir did not write (unless `overwrite`). Creates nothing."""
    strangers = []
    for folder, names in _by_folder(paths).items():
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise DataError(f"{what}: {folder} is a file, not a folder")
        ours = written_by_ppir(folder)
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                raise DataError(f"{what}: {path} is a folder, expected an output file name")
            if os.path.lexists(path) and name not in ours and not overwrite:
                strangers.append(path)
    if strangers:
        if len(strangers) == 1:
            found, them = f"{strangers[0]} exists", "it"
        else:
            found, them = f"{strangers[0]} and {len(strangers) - 1} more files exist", "them"
        raise DataError(f"{what}: {found} and ppir did not write {them}; pass --overwrite to replace {them}, "
                        "or choose another output")


def record_outputs(paths, what="--output"):
    """Create the folders of `paths` and list the names in their markers, before the files are
    written; DataError names a folder that cannot be created or written (read-only, full)."""
    for folder, names in _by_folder(paths).items():
        try:
            os.makedirs(folder, exist_ok=True)
            listed = written_by_ppir(folder)
            if not set(names) <= listed:
                data = "".join(f"{n}\n" for n in sorted(listed | set(names))).encode("utf-8")
                write_atomic(os.path.join(folder, MARKER), data)
        except OSError as exc:
            raise DataError(f"{what}: cannot write to folder {folder}: {describe_os_error(exc)}") from None


def check_output_file(path, what, reads, overwrite=False):
    """Before any work: DataError if the file `what` (e.g. "--json") would land on or inside
    something in `reads` ((path, label) pairs, e.g. ppir.data.reads.config_reads), or replace a
    file ppir did not write without `overwrite`."""
    refuse_overlap([(path, what)], reads)
    check_outputs([path], overwrite, what)


def write_output_file(path, text, what):
    """Record `path` as ppir's, then write `text` to it atomically; DataError names the file."""
    record_outputs([path], what)
    try:
        write_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        raise DataError(f"{what}: cannot write {path}: {describe_os_error(exc)}") from None


def describe_os_error(exc):
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied (read-only?)"
    return exc.strerror or str(exc)


def write_atomic(path, data):
    """Write bytes through a temp file next to `path`, then rename; the temp file never stays
    behind, whatever fails. OSError propagates (callers name the file)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)
