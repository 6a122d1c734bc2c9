"""Tests for ppir/utils/benchmark_log.py: the AutoLog-format benchmark report."""
import io
import re

import pytest

from ppir.utils.benchmark_log import AutoLogger, Times

LINE = re.compile(r"^\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\] root INFO: (.*)$")
HEADERS = [
    "-" * 22 + " Env info " + "-" * 22,
    "-" * 22 + " Paddle info " + "-" * 22,
    "-" * 23 + " Conf info " + "-" * 23,
    "-" * 23 + " Model info " + "-" * 22,
    "-" * 23 + " Data info " + "-" * 23,
    "-" * 23 + " Perf info " + "-" * 23,
]


def _run(logger, n=3):
    for _ in range(n):
        logger.times.start()
        logger.times.stamp()
        logger.times.stamp()
        logger.times.end(stamp=True)


def test_times_records_one_value_per_key_and_skips_warmup():
    """start/stamp/stamp/end(stamp=True) fills the three keys in order; warmup samples are dropped."""
    times = Times(warmup=1)
    _run(type("L", (), {"times": times})(), n=3)
    assert times.count == 3
    assert all(len(times.times[k]) == 3 for k in ("preprocess_time", "inference_time", "postprocess_time"))
    times.times["inference_time"] = [100.0, 1.0, 3.0]
    assert times.mean("inference_time") == 2.0
    with pytest.raises(ValueError, match="warmup"):
        Times(warmup=2).mean("preprocess_time")


def test_report_prints_the_autolog_block(tmp_path):
    """Every line has AutoLog's prefix, the six headers keep their dash counts, and the perf lines
    have the exact field layout TIPC's log parsers read; nothing calls sys.exit."""
    stream = io.StringIO()
    log_file = tmp_path / "logs" / "bench.log"
    logger = AutoLogger("MIRNetV2", "fp32", batch_size=1, data_shape="dynamic", save_path=str(log_file),
                        inference_config={"runtime_device": "cpu", "ir_optim": True, "enable_mkldnn": True,
                                          "enable_memory_optim": False, "enable_tensorrt": False,
                                          "cpu_math_library_num_threads": 2},
                        stream=stream, interval=0.01)
    _run(logger)
    logger.report()
    text = stream.getvalue()
    assert log_file.read_text() == text
    lines = text.split("\n")
    assert LINE.match(lines[0]).group(1) == "" and lines[1] == ""  # the leading "\n" message
    messages = [LINE.match(line).group(1) for line in lines[2:] if line]
    assert [m for m in messages if m.startswith("-")] == HEADERS
    assert "INFO:  OS_version: " in text and " drivier_version: " in text
    assert "  enable_mkldnn: True" in text and "  cpu_math_library_num_threads: 2" in text
    assert "  enable_memory_optim: False" in text
    assert " model_name: MIRNetV2" in messages and " data_num: 3" in messages
    assert re.fullmatch(r" cpu_rss\(MB\): \d+\.?\d*, gpu_rss\(MB\): None, gpu_util: None%", messages[-3])
    assert re.fullmatch(r" total time spent\(s\): \d+\.\d+(e-\d+)?", messages[-2])
    assert re.fullmatch(r" preprocess_time\(ms\): [\d.e-]+, inference_time\(ms\): [\d.e-]+, "
                        r"postprocess_time\(ms\): [\d.e-]+", messages[-1])
    assert logger.peak_rss_mb > 0


def test_report_identifier_prefix_and_no_config():
    """An identifier prefixes each field line as `[id] key: value`; no config prints None values."""
    stream = io.StringIO()
    logger = AutoLogger("m", stream=stream, interval=0.01)
    _run(logger, n=1)
    messages = logger.report(identifier="demo")
    assert "[demo] runtime_device: None" in messages
    assert "[demo] batch_size: 1" in messages
