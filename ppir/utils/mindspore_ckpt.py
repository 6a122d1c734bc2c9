"""Reading MindSpore `.ckpt` files without MindSpore.

A checkpoint written by `mindspore.save_checkpoint` is a protobuf message (MindSpore's
`mindspore/ccsrc/utils/checkpoint.proto`):

    message Checkpoint { repeated Value value = 1; }
    message Value { required string tag = 1; required TensorProto tensor = 2; ... }
    message TensorProto { repeated int64 dims = 1; required string tensor_type = 2;
                          required bytes tensor_content = 3; }

The wire format is decoded here by hand (a few varints and length prefixes), so neither
MindSpore nor generated protobuf code is needed. MindSpore writes a tensor larger than its slice
size as several consecutive `Value`s with the same tag, each holding a slice along the first
axis; their contents are joined. `tensor_content` is the C-ordered little-endian array.
"""
import os
from collections import OrderedDict

import numpy as np

from ppir.errors import CheckpointError

# MindSpore's `tensor_type` strings (mindspore/train/serialization.py) -> numpy dtype names.
# BFloat16 has no numpy dtype: its 16 bits are widened to float32 exactly.
_DTYPES = {
    "Float16": "float16", "Float32": "float32", "Float64": "float64", "BFloat16": "bfloat16",
    "Int8": "int8", "Int16": "int16", "Int32": "int32", "Int64": "int64", "UInt8": "uint8",
    "UInt16": "uint16", "UInt32": "uint32", "UInt64": "uint64", "Bool": "bool",
}


class _Malformed(Exception):
    pass


def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Malformed("varint runs past the end")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf, start=0, end=None):
    """Yield (field_number, wire_type, value) of one message; LEN values are memoryview slices."""
    pos, end = start, len(buf) if end is None else end
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise _Malformed(f"field {number} of {length} bytes runs past the end")
            value, pos = buf[pos:pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise _Malformed("fixed-size field runs past the end")
            value, pos = bytes(buf[pos:pos + size]), pos + size
        else:
            raise _Malformed(f"wire type {wire}")
        yield number, wire, value


def _parse_tensor(buf):
    dims, dtype, chunks = [], None, []
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            dims.append(value - (1 << 64) if value >= 1 << 63 else value)
        elif number == 1 and wire == 2:  # the packed encoding of `repeated int64`
            pos = 0
            while pos < len(value):
                dim, pos = _varint(value, pos)
                dims.append(dim)
        elif number == 2 and wire == 2:
            dtype = bytes(value).decode("utf-8", "replace")
        elif number == 3 and wire == 2:
            chunks.append(value)
    if dtype is None:
        raise _Malformed("a tensor without tensor_type")
    return dims, dtype, b"".join(chunks)


def _to_array(tag, dims, dtype, content, path):
    if dtype == "str":  # MindSpore stores Python strings (e.g. metadata) this way
        return bytes(content).decode("utf-8", "replace")
    if dtype not in _DTYPES:
        raise CheckpointError(f"{path}: entry '{tag}' has tensor_type {dtype!r}, which this "
                              f"reader does not know ({', '.join(_DTYPES)})")
    name = _DTYPES[dtype]
    np_dtype = np.dtype("<u2" if name == "bfloat16" else name).newbyteorder("<")
    count = int(np.prod(dims)) if dims else 1
    if any(d < 0 for d in dims) or count * np_dtype.itemsize != len(content):
        raise CheckpointError(
            f"{path}: entry '{tag}' ({dtype} {dims}) holds {len(content)} bytes, expected "
            f"{max(count, 0) * np_dtype.itemsize}; the file is truncated or corrupt")
    arr = np.frombuffer(content, dtype=np_dtype).reshape(dims).astype(np_dtype.newbyteorder("="))
    if name == "bfloat16":
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


def parse_ckpt(data, path="<bytes>"):
    """Decode the bytes of a MindSpore checkpoint into an OrderedDict {tag: numpy array}.

    Raises CheckpointError when the bytes are not a MindSpore checkpoint (or are cut short).
    """
    buf = memoryview(data)
    entries = OrderedDict()  # tag -> [dims, dtype, [content slices]]
    try:
        for number, wire, value in _fields(buf):
            if number != 1 or wire != 2:
                raise _Malformed(f"top-level field {number} (wire type {wire})")
            tag, tensor = None, None
            for sub_number, sub_wire, sub_value in _fields(value):
                if sub_number == 1 and sub_wire == 2:
                    tag = bytes(sub_value).decode("utf-8")
                elif sub_number == 2 and sub_wire == 2:
                    tensor = _parse_tensor(sub_value)
            if tag is None or tensor is None:
                raise _Malformed("a value without tag or tensor")
            dims, dtype, content = tensor
            if tag in entries and entries[tag][1] == dtype:
                entries[tag][2].append(content)  # another slice of a large tensor
            elif tag in entries:
                raise _Malformed(f"'{tag}' appears twice with different types")
            else:
                entries[tag] = [dims, dtype, [content]]
    except (_Malformed, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{path}: not a MindSpore checkpoint, or a truncated/encrypted one ({exc})") from None
    if not entries:
        raise CheckpointError(f"{path}: MindSpore checkpoint without any entry")
    return OrderedDict((tag, _to_array(tag, dims, dtype, b"".join(parts), path))
                       for tag, (dims, dtype, parts) in entries.items())


def read_ckpt(path):
    """Read a MindSpore `.ckpt` file; see `parse_ckpt`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    with open(path, "rb") as file:
        return parse_ckpt(file.read(), path)
