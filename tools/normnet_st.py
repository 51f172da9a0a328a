"""A small pure-numpy safetensors reader and writer, used by tools/from_torch.py and the
PyTorch-parity scripts (tests/torch/st.py re-exports it).

Debian's python3 has numpy and torch but not the `safetensors` package; this module reads and
writes the same format (docs in include/normnet/safetensors.h):

    [u64 little-endian N][N bytes of UTF-8 JSON header, space padded to a multiple of 8][data]

The writer produces the same bytes as normnet's C++ writer (and the reference writer for a
single dtype): tensors sorted by name, data in that order, compact JSON with "__metadata__"
first and entry fields in the order dtype, shape, data_offsets. The reader checks offsets,
sizes and dtypes and raises ValueError naming the file and tensor at fault.

    tensors, metadata = read_safetensors(path)      # dict name -> np.ndarray, dict str -> str
    write_safetensors(path, tensors, metadata=None)  # numpy arrays, or torch tensors
"""

import json
import os

import numpy as np

# safetensors dtype -> numpy dtype (little-endian). BF16 has no numpy type: it is read as
# float32 (exact) and cannot be written.
_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_SIZES = {name: dt.itemsize for name, dt in _DTYPES.items()}
_SIZES.update({"BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1})
_MAX_HEADER = 100_000_000


def _to_numpy(value):
    """A numpy array from a numpy array, a torch tensor or anything np.asarray accepts."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _dtype_name(arr, name):
    for st_name, dt in _DTYPES.items():
        if arr.dtype.kind == dt.kind and arr.dtype.itemsize == dt.itemsize:
            return st_name
    raise ValueError(
        f"safetensors: tensor '{name}': numpy dtype {arr.dtype} has no safetensors dtype")


def serialize_safetensors(tensors, metadata=None):
    """The bytes of a safetensors file holding `tensors` (name -> array) and `metadata`."""
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError(f"safetensors: __metadata__ must map str to str, got {k!r}: {v!r}")
        header["__metadata__"] = dict(sorted(metadata.items()))
    chunks = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise ValueError("safetensors: '__metadata__' is reserved and cannot name a tensor")
        arr = _to_numpy(tensors[name])
        dtype = _dtype_name(arr, name)
        data = np.ascontiguousarray(arr, dtype=_DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": [int(d) for d in arr.shape],
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def write_safetensors(path, tensors, metadata=None):
    """Writes atomically: PATH.tmp.PID, fsync, rename."""
    data = serialize_safetensors(tensors, metadata)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _pairs_no_duplicates(what):
    def hook(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise ValueError(f"safetensors file '{what}': duplicate key '{k}' in the header")
            seen.add(k)
        return dict(pairs)
    return hook


def parse_safetensors(data, what="<bytes>"):
    """(dict name -> np.ndarray, metadata dict) from the bytes of a safetensors file."""
    def bad(msg):
        raise ValueError(f"safetensors file '{what}': {msg}")

    if len(data) < 8:
        bad(f"file is {len(data)} bytes, shorter than the 8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n > _MAX_HEADER:
        bad(f"header length {n} exceeds the limit of {_MAX_HEADER} bytes (100 MB)")
    if n > len(data) - 8:
        bad(f"header length {n} runs past the end of the file")
    raw = bytes(data[8:8 + n])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        bad(f"header is not valid UTF-8 ({e})")
    if not text.startswith("{"):
        bad("header does not start with '{'")
    try:
        header = json.loads(text, object_pairs_hook=_pairs_no_duplicates(what))
    except json.JSONDecodeError as e:
        bad(f"header is not valid JSON: {e}")
    body = memoryview(data)[8 + n:]

    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        bad("__metadata__ is not a map of string to string")

    def is_int(x):
        return isinstance(x, int) and not isinstance(x, bool)

    spans = []
    for name, entry in header.items():
        def bad_t(msg):
            bad(f"tensor '{name}': {msg}")
        if not isinstance(entry, dict):
            bad_t("entry is not an object")
        if set(entry) != {"dtype", "shape", "data_offsets"}:
            bad_t(f"keys are {sorted(entry)}, expected dtype, shape, data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _SIZES:
            bad_t(f"unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(is_int(d) for d in shape):
            bad_t(f"shape {shape!r} is not a list of integers")
        if any(d < 0 for d in shape):
            bad_t(f"negative dimension in shape {shape}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(is_int(o) and o >= 0 for o in offsets)):
            bad_t(f"data_offsets {offsets!r} are not two non-negative integers")
        begin, end = offsets
        if begin > end:
            bad_t(f"data_offsets {offsets} are out of order")
        nbytes = int(np.prod(shape, dtype=object)) * _SIZES[dtype]  # exact, no overflow
        if nbytes != end - begin:
            bad_t(f"shape {shape} of dtype {dtype} needs {nbytes} bytes "
                  f"but data_offsets span {end - begin}")
        spans.append((begin, end, name))
    covered = 0
    for begin, end, name in sorted(spans):
        if begin < covered:
            bad(f"tensor '{name}': data_offsets [{begin}, {end}] overlap the previous tensor")
        if begin > covered:
            bad(f"tensor '{name}': data_offsets [{begin}, {end}] leave a gap "
                f"after offset {covered}")
        covered = end
    if covered != len(body):
        bad(f"the tensors cover {covered} bytes but the data section has {len(body)}")

    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype, shape = entry["dtype"], entry["shape"]
        chunk = body[begin:end]
        if dtype == "BF16":
            bits = np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif dtype in _DTYPES:
            arr = np.frombuffer(chunk, dtype=_DTYPES[dtype])
        else:
            bad(f"tensor '{name}': dtype {dtype} cannot be read into numpy")
        tensors[name] = arr.reshape(shape).astype(arr.dtype.newbyteorder("="), copy=True)
    return tensors, metadata


def read_safetensors(path):
    """(dict name -> np.ndarray, metadata dict) from a safetensors file."""
    with open(path, "rb") as f:
        return parse_safetensors(f.read(), path)
