"""Progress of a long run: a tqdm bar on stderr, a caller's callback, or nothing.

`progress` as the API and the front ends take it: False/None (silent), True (a tqdm bar on
stderr, drawn only when stderr is a terminal), or a callable `progress(done, total, what)` (a
web page's progress bar, a log line).
"""
import sys


class Progress:
    """Counts steps of one kind (`what`: "tiles", "tokens", "images") towards `total`."""

    def __init__(self, progress, total, what):
        self.total, self.what, self.done = int(total), what, 0
        self.callback = progress if callable(progress) else None
        self.bar = None
        if progress is True and self.total > 1:
            from tqdm import tqdm

            # disable=None: no bar when stderr is not a terminal (logs, CI, a harness's pipe).
            self.bar = tqdm(total=self.total, desc=what, file=sys.stderr, leave=False, disable=None,
                            dynamic_ncols=True)

    def step(self, n=1):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        if self.callback is not None:
            self.callback(self.done, self.total, self.what)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
