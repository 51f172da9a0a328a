"""Checks tests/torch/st.py, the numpy safetensors reader/writer the parity scripts use:
round trips of every numpy dtype, the exact bytes of a small file (the same bytes the C++ unit
test tests/unit/safetensors_test.cpp expects from normnet's writer, so both writers agree),
files laid out as the reference writer lays them out, and rejection of malformed files.

Run by ctest as: python3 test_safetensors_python.py --runner R --normnet N --models M --workdir W
"""

import argparse
import os
import struct
import sys
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


def header_file(header, data=b""):
    """A file from a header string used as given (no padding) and a data section."""
    h = header.encode("utf-8")
    return struct.pack("<Q", len(h)) + h + data


def expect_rejected(data, *parts):
    try:
        st.parse_safetensors(data, "bad.safetensors")
    except ValueError as e:
        msg = str(e)
        for part in ("bad.safetensors",) + parts:
            assert part in msg, f"'{part}' missing in: {msg}"
        return
    raise AssertionError(f"accepted a malformed file, expected an error about {parts}")


def test_round_trip(workdir):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((3, 4)).astype(np.float32)
    tensors = {
        "conv1.weight": base.T,  # not contiguous
        "f64": rng.standard_normal((2, 2, 2)),
        "f16": np.array([1.0, -2.5], dtype=np.float16),
        "labels": np.array([[7, -1], [2**62, -(2**63)]], dtype=np.int64),
        "i32": np.arange(6, dtype=np.int32).reshape(2, 3),
        "i16": np.array([-3], dtype=np.int16),
        "i8": np.array([-128, 127], dtype=np.int8),
        "u8": np.array([0, 255], dtype=np.uint8),
        "u16": np.array([65535], dtype=np.uint16),
        "u32": np.array([2**32 - 1], dtype=np.uint32),
        "u64": np.array([2**64 - 1], dtype=np.uint64),
        "mask": np.array([True, False, True]),
        "empty": np.zeros((2, 0, 3), dtype=np.float32),
        "scalar": np.array(2.5, dtype=np.float32),
        "big_endian": np.array([1.5, 2.5], dtype=">f4"),
        "ünïcode name": np.ones(1, dtype=np.float32),
    }
    metadata = {"format": "pt", "note": 'ünïcode "quoted" \\ and\nnewline'}
    path = os.path.join(workdir, "round_trip.safetensors")
    st.write_safetensors(path, tensors, metadata)
    assert [f for f in os.listdir(workdir) if ".tmp." in f] == [], "temporary file left behind"
    got, got_meta = st.read_safetensors(path)
    assert got_meta == metadata, got_meta
    assert sorted(got) == sorted(tensors), sorted(got)
    for name, want in tensors.items():
        have = got[name]
        assert have.shape == want.shape, (name, have.shape, want.shape)
        assert have.dtype.kind == want.dtype.kind and have.dtype.itemsize == want.dtype.itemsize, (
            name, have.dtype, want.dtype)
        assert np.array_equal(have, want), name
        assert have.flags.writeable, name
    # Reading and writing again gives the same bytes.
    with open(path, "rb") as f:
        first = f.read()
    assert st.serialize_safetensors(got, got_meta) == first
    # No metadata, no tensors.
    assert st.serialize_safetensors({}) == struct.pack("<Q", 8) + b"{}      "
    assert st.parse_safetensors(st.serialize_safetensors({})) == ({}, {})


def test_byte_exact_layout(workdir):
    # Hand-built from the format: metadata first, tensors sorted by name, compact JSON with the
    # fields in the order dtype, shape, data_offsets, padded with spaces to a multiple of 8.
    # tests/unit/safetensors_test.cpp (ByteExactLayout) expects these bytes from the C++ writer.
    header = ('{"__metadata__":{"k":"v"},'
              '"a":{"dtype":"I64","shape":[],"data_offsets":[0,8]},'
              '"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}')
    assert len(header) == 132
    expected = (bytes([136, 0, 0, 0, 0, 0, 0, 0]) + header.encode() + b"    "
                + bytes([7, 0, 0, 0, 0, 0, 0, 0]) + bytes([0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0]))
    tensors = {"b": np.array([1.0, -2.0], dtype=np.float32), "a": np.array(7, dtype=np.int64)}
    got = st.serialize_safetensors(tensors, {"k": "v"})
    assert got == expected, (got, expected)
    path = os.path.join(workdir, "exact.safetensors")
    st.write_safetensors(path, tensors, {"k": "v"})
    with open(path, "rb") as f:
        assert f.read() == expected


def test_reference_writer_layouts(workdir):
    # The reference writer orders data by dtype before name; key order and the place of
    # __metadata__ are free; zero-byte tensors may share an offset; BF16 is read as float32.
    header = ('{"z":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},'
              '"a":{"shape":[2],"data_offsets":[8,16],"dtype":"F32"},'
              '"e":{"dtype":"F32","shape":[0],"data_offsets":[16,16]},'
              '"h":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]},'
              '"__metadata__":{"format":"pt"}}   ')
    data = (struct.pack("<d", -1.5) + struct.pack("<2f", 0.5, 4.0)
            + struct.pack("<2H", 0x3F80, 0xC040))  # bf16 1.0, -3.0
    tensors, meta = st.parse_safetensors(header_file(header, data), "ref")
    assert meta == {"format": "pt"}
    assert tensors["z"].tolist() == [-1.5]
    assert tensors["a"].tolist() == [0.5, 4.0]
    assert tensors["e"].shape == (0,)
    assert tensors["h"].dtype == np.float32 and tensors["h"].tolist() == [1.0, -3.0]


def test_rejections(workdir):
    def one(entry, data=b""):
        return header_file('{"t":' + entry + "}", data)

    expect_rejected(b"\x02\x00\x00", "shorter than")
    expect_rejected(struct.pack("<Q", 9) + b"{}      ", "past the end of the file")
    expect_rejected(struct.pack("<Q", 100_000_001) + b"{", "100 MB")
    expect_rejected(struct.pack("<Q", 4) + b'{"\xff}', "UTF-8")
    expect_rejected(header_file(' {}'), "start with '{'")
    expect_rejected(header_file('{"t":'), "not valid JSON")
    expect_rejected(header_file('{}\0\0'), "not valid JSON")
    expect_rejected(one('{"shape":[1],"data_offsets":[0,4]}', bytes(4)), "tensor 't'")
    expect_rejected(one('{"dtype":"F32","shape":"1","data_offsets":[0,4]}', bytes(4)), "shape")
    expect_rejected(one('{"dtype":"F32","shape":[1],"data_offsets":[0]}', bytes(4)), "data_offsets")
    expect_rejected(one('{"dtype":"F4","shape":[1],"data_offsets":[0,4]}', bytes(4)),
                    "unknown dtype")
    expect_rejected(one('{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}'), "negative")
    expect_rejected(one('{"dtype":"F32","shape":[3],"data_offsets":[0,8]}', bytes(8)),
                    "needs 12 bytes")
    expect_rejected(one('{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}'),
                    "needs 18446744073709551616 bytes")
    expect_rejected(one('{"dtype":"U8","shape":[4],"data_offsets":[8,4]}', bytes(8)),
                    "out of order")
    two = ('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},'
           '"b":{"dtype":"U8","shape":[4],"data_offsets":[%d,%d]}}')
    expect_rejected(header_file(two % (2, 6), bytes(6)), "overlap")
    expect_rejected(header_file(two % (6, 10), bytes(10)), "gap")
    expect_rejected(header_file(two % (4, 8), bytes(9)), "cover")
    expect_rejected(header_file('{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},'
                                '"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'),
                    "duplicate key 'a'")
    expect_rejected(header_file('{"__metadata__":{"epoch":3}}'), "__metadata__")
    expect_rejected(header_file('{"__metadata__":null}'), "__metadata__")


def test_torch_tensors(workdir):
    try:
        import torch
    except ImportError:
        print("torch not importable: skipping the torch-tensor check")
        return
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()
    data = st.serialize_safetensors({"w": t, "n": torch.tensor([3], dtype=torch.int64)})
    got, _ = st.parse_safetensors(data)
    assert np.array_equal(got["w"], t.numpy()) and got["w"].dtype == np.float32
    assert got["n"].tolist() == [3] and got["n"].dtype == np.int64


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default="st_python_work")
    args, _ = parser.parse_known_args()  # --runner, --normnet, --models are not needed here
    os.makedirs(args.workdir, exist_ok=True)
    tests = [test_round_trip, test_byte_exact_layout, test_reference_writer_layouts,
             test_rejections, test_torch_tensors]
    failed = 0
    for test in tests:
        try:
            test(args.workdir)
            print(f"[ OK ] {test.__name__}")
        except Exception:  # report every failure, not only the first
            failed += 1
            print(f"[FAIL] {test.__name__}")
            traceback.print_exc()
    print(f"{len(tests) - failed} of {len(tests)} passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
