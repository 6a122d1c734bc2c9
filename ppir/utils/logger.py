"""One logger for ppir: stdout plus an optional file, rank 0 only under distributed runs."""
import logging
import os
import sys

_NAME = "ppir"


def get_logger(log_file=None, rank=0):
    logger = logging.getLogger(_NAME)
    if getattr(logger, "_ppir_ready", False) and not log_file:
        return logger
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    fmt = logging.Formatter("[%(asctime)s] %(levelname)s %(message)s", "%Y/%m/%d %H:%M:%S")
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(fmt)
    logger.addHandler(stream)
    if log_file and rank == 0:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handler = logging.FileHandler(log_file, mode="a")
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    logger._ppir_ready = True
    return logger
