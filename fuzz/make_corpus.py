#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus, fuzz/corpus/<target>/: a few small valid files per reader
(deterministic; the files are committed, this script says how they were made). Needs numpy and
Debian's python3-onnx; run from anywhere:

    /usr/bin/python3 fuzz/make_corpus.py
"""

import gzip
import json
import os
import struct
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import normnet_st  # noqa: E402

rng = np.random.default_rng(1234)


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ------------------------------------------------------------------ IDX
def idx(type_byte, arr):
    head = bytes([0, 0, type_byte, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


images = rng.integers(0, 256, size=(2, 3, 3), dtype=np.uint8)
out("idx", "images-idx3-ubyte", idx(0x08, images))
out("idx", "labels-idx1-ubyte", idx(0x08, np.array([3, 7, 1], dtype=np.uint8)))
out("idx", "images-idx3-ubyte.gz", gzip.compress(idx(0x08, images), mtime=0))
out("idx", "floats-idx2", idx(0x0D, rng.standard_normal((2, 2)).astype(np.float32)))
out("idx", "shorts-idx1", idx(0x0B, np.array([1, -2, 300], dtype=np.int16)))

# ------------------------------------------------------------------ CIFAR-10 binary
for n in (1, 2):
    recs = b"".join(bytes([int(rng.integers(0, 10))]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes()
                    for _ in range(n))
    out("cifar", f"batch-{n}.bin", recs)


# ------------------------------------------------------------------ PNG
def png(width, height, color_type, bit_depth, rows, plte=None, trns=None):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + r for r in rows)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
    if plte:
        data += chunk(b"PLTE", plte)
    if trns:
        data += chunk(b"tRNS", trns)
    return data + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


out("png", "gray-4x4.png", png(4, 4, 0, 8, [rng.integers(0, 256, 4, dtype=np.uint8).tobytes() for _ in range(4)]))
out("png", "rgb-3x2.png", png(3, 2, 2, 8, [rng.integers(0, 256, 9, dtype=np.uint8).tobytes() for _ in range(2)]))
out("png", "rgba16-2x2.png", png(2, 2, 6, 16, [rng.integers(0, 256, 16, dtype=np.uint8).tobytes() for _ in range(2)]))
out("png", "palette-2x2.png", png(2, 2, 3, 8, [bytes([0, 1]), bytes([1, 0])], plte=bytes([255, 0, 0, 0, 0, 255]),
                                  trns=bytes([128])))
out("png", "graya-2x2.png", png(2, 2, 4, 8, [bytes([10, 255, 20, 128]), bytes([30, 0, 40, 64])]))

# ------------------------------------------------------------------ safetensors and checkpoints
out("safetensors", "normnet.safetensors", normnet_st.serialize_safetensors(
    {"conv.weight": rng.standard_normal((2, 1, 3, 3)).astype(np.float32),
     "bn.num_batches_tracked": np.array(5, dtype=np.int64)}, {"normnet.format": "1", "note": "seed"}))
out("safetensors", "dtypes.safetensors", normnet_st.serialize_safetensors(
    {"a": np.arange(3, dtype=np.float16), "b": np.array([1, 0], dtype=np.bool_), "c": np.arange(4, dtype=np.uint8),
     "d": np.arange(2, dtype=np.float64)}))
out("safetensors", "metadata-only.safetensors", normnet_st.serialize_safetensors({}, {"k": "v"}))

# The fixed model of fuzz/fuzz_checkpoint.cpp (keep the two in step).
FUZZ_MODEL = {"name": "fuzz", "input": [1, 8, 8], "classes": 3, "layers": [
    {"type": "Conv2d", "name": "conv", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"type": "BatchNorm2d", "name": "bn", "num_features": 4},
    {"type": "ReLU", "name": "relu"},
    {"type": "Residual", "name": "block", "body": [
        {"type": "Conv2d", "name": "conv", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1,
         "bias": False},
        {"type": "BatchNorm2d", "name": "bn", "num_features": 4, "momentum": None}], "activation": "ReLU"},
    {"type": "GlobalAvgPool", "name": "pool"},
    {"type": "Linear", "name": "fc", "in_features": 4, "out_features": 3}]}


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


state = {"conv.weight": f32(4, 1, 3, 3), "conv.bias": f32(4), "block.conv.weight": f32(4, 4, 3, 3),
         "fc.weight": f32(3, 4), "fc.bias": f32(3)}
for bn in ("bn", "block.bn"):
    state.update({f"{bn}.weight": f32(4), f"{bn}.bias": f32(4), f"{bn}.running_mean": f32(4),
                  f"{bn}.running_var": np.abs(f32(4)) + 0.5, f"{bn}.num_batches_tracked": np.array(3, dtype=np.int64)})
meta = {"normnet.format": "1", "normnet.model": json.dumps(FUZZ_MODEL),
        "normnet.normalization": json.dumps({"mean": 0.25, "std": 0.5})}
out("checkpoint", "fuzz-model.safetensors", normnet_st.serialize_safetensors(state, meta))
small = {"name": "tiny", "input": [1, 2, 2], "classes": 2, "layers": [
    {"type": "Flatten"}, {"type": "Linear", "in_features": 4, "out_features": 2}]}
out("checkpoint", "tiny.safetensors", normnet_st.serialize_safetensors(
    {"1.weight": f32(2, 4), "1.bias": f32(2)},
    {"normnet.format": "1", "normnet.model": json.dumps(small), "normnet.normalization": '{"mean": 0, "std": 1}'}))

# ------------------------------------------------------------------ model descriptions
for name in ("seed001", "seed003-cnn1d"):
    with open(os.path.join(ROOT, "models", f"{name}.json"), "rb") as f:
        out("model", f"{name}.json", f.read())
out("model", "fuzz-model.json", json.dumps(FUZZ_MODEL).encode())
out("model", "many-layers.json", json.dumps({"name": "many", "input": [2, 6, 6], "classes": 2, "layers": [
    {"type": "Conv2d", "name": "c1", "in_channels": 2, "out_channels": 4, "kernel_size": [3, 1], "padding": [1, 0],
     "groups": 2},
    {"type": "GroupNorm", "name": "gn", "num_groups": 2, "num_channels": 4},
    {"type": "ELU", "alpha": 0.5},
    {"type": "Concat", "name": "cat", "branches": [
        {"name": "id", "layers": []},
        {"name": "b", "layers": [{"type": "InstanceNorm2d", "num_features": 4, "affine": True},
                                 {"type": "LeakyReLU", "negative_slope": 0.1}]}]},
    {"type": "MaxPool2d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    {"type": "BatchRenorm2d", "name": "brn", "num_features": 8},
    {"type": "GhostBatchNorm2d", "name": "gbn", "num_features": 8, "virtual_batch_size": 1},
    {"type": "AvgPool2d", "kernel_size": 2, "count_include_pad": False},
    {"type": "Reshape", "shape": [8, 4]},
    {"type": "Flatten"},
    {"type": "LayerNorm", "normalized_shape": 32},
    {"type": "Dropout", "p": 0.25},
    {"type": "BatchNorm1d", "num_features": 32, "momentum": None},
    {"type": "Linear", "name": "fc", "in_features": 32, "out_features": 2}]}).encode())

# ------------------------------------------------------------------ ONNX (tiny graphs)
try:
    import onnx
    from onnx import TensorProto, helper
except ImportError:
    print("python3-onnx missing: the onnx corpus was not written")
    sys.exit(0)


def t(name, arr):
    arr = np.asarray(arr)
    dt = TensorProto.FLOAT if arr.dtype == np.float32 else TensorProto.INT64
    return helper.make_tensor(name, dt, arr.shape, arr.tobytes(), raw=True)


def model(nodes, inits, in_dims=("N", 1, 6, 6), classes=3):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(in_dims))],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_corpus")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


n = helper.make_node
out("onnx", "conv-bn-pool.onnx", model([
    n("Conv", ["input", "c.weight", "c.bias"], ["c"], name="c", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    n("BatchNormalization", ["c", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"], ["b"], name="bn",
      epsilon=1e-5, momentum=0.9),
    n("Relu", ["b"], ["r"], name="relu"),
    n("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    n("Flatten", ["p"], ["f"], name="flat", axis=1),
    n("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1)],
    [t("c.weight", f32(2, 1, 3, 3)), t("c.bias", f32(2)), t("bn.weight", f32(2)), t("bn.bias", f32(2)),
     t("bn.running_mean", f32(2)), t("bn.running_var", np.float32([1, 2])), t("fc.weight", f32(3, 18)),
     t("fc.bias", f32(3))]))
out("onnx", "residual-gap.onnx", model([
    n("Conv", ["input", "w1"], ["a"], name="b/conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    n("Relu", ["a"], ["ar"], name="b/relu"),
    n("Conv", ["ar", "w2"], ["a2"], name="b/conv2", kernel_shape=[1, 1]),
    n("Conv", ["input", "ws"], ["s"], name="b/shortcut", kernel_shape=[1, 1]),
    n("Add", ["a2", "s"], ["sum"], name="b/add"),
    n("Relu", ["sum"], ["y"], name="b/post"),
    n("GlobalAveragePool", ["y"], ["g"], name="gap"),
    n("Flatten", ["g"], ["f"], name="gap/flatten", axis=1),
    n("Gemm", ["f", "fcw"], ["logits"], name="fc", transB=1)],
    [t("w1", f32(2, 1, 3, 3)), t("w2", f32(2, 2, 1, 1)), t("ws", f32(2, 1, 1, 1)), t("fcw", f32(3, 2))]))
out("onnx", "concat-shape-arith.onnx", model([
    n("Conv", ["input", "w1"], ["a"], name="/cat/b1/Conv", kernel_shape=[1, 1]),
    n("Concat", ["input", "a"], ["c"], name="/cat/Concat", axis=1),
    n("Shape", ["c"], ["sh"], name="/gap/Shape"),
    n("Constant", [], ["k0"], name="/gap/Constant", value=t("k0v", np.int64([0]))),
    n("Constant", [], ["k2"], name="/gap/Constant_1", value=t("k2v", np.int64([2]))),
    n("Slice", ["sh", "k0", "k2", "k0"], ["sl"], name="/gap/Slice"),
    n("Constant", [], ["m1"], name="/gap/Constant_2", value=t("m1v", np.int64([-1]))),
    n("Concat", ["sl", "m1"], ["tgt"], name="/gap/Concat", axis=0),
    n("Reshape", ["c", "tgt"], ["rs"], name="/gap/Reshape"),
    n("ReduceMean", ["rs"], ["rm"], name="/gap/ReduceMean", axes=[2], keepdims=0),
    n("Shape", ["rm"], ["sh2"], name="/fc/Shape"),
    n("Gather", ["sh2", "k0s"], ["bs"], name="/fc/Gather", axis=0),
    n("Unsqueeze", ["bs", "k0"], ["bsu"], name="/fc/Unsqueeze"),
    n("Concat", ["bsu", "m1"], ["tgt2"], name="/fc/Concat", axis=0),
    n("Reshape", ["rm", "tgt2"], ["rr"], name="/fc/Reshape"),
    n("MatMul", ["rr", "mw"], ["mm"], name="/fc/MatMul"),
    n("Add", ["mm", "mb"], ["logits"], name="/fc/Add")],
    [t("w1", f32(2, 1, 1, 1)), t("k0s", np.array(0, dtype=np.int64)), t("mw", f32(3, 3)), t("mb", f32(3))]))
out("onnx", "norms-pad.onnx", model([
    n("Reshape", ["input", "gshape"], ["g1"], name="gn/reshape_groups"),
    n("InstanceNormalization", ["g1", "ones1", "zeros1"], ["g2"], name="gn/normalize", epsilon=1e-5),
    n("Reshape", ["g2", "back"], ["g3"], name="gn/reshape_back"),
    n("Mul", ["g3", "gn.weight"], ["g4"], name="gn/mul"),
    n("Add", ["g4", "gn.bias"], ["g5"], name="gn/add"),
    n("Elu", ["g5"], ["e"], name="elu", alpha=0.5),
    n("InstanceNormalization", ["e", "in.weight", "in.bias"], ["i"], name="in", epsilon=1e-5),
    n("LeakyRelu", ["i"], ["l"], name="lrelu", alpha=0.2),
    n("Pad", ["l", "pads"], ["pd"], name="/pool/Pad", mode="constant"),
    n("AveragePool", ["pd"], ["ap"], name="/pool/AveragePool", kernel_shape=[3, 3], strides=[2, 2]),
    n("Dropout", ["ap"], ["dr"], name="drop"),
    n("Identity", ["dr"], ["id"], name="ident"),
    n("Flatten", ["id"], ["f"], name="flat", axis=1),
    n("LayerNormalization", ["f", "ln.weight", "ln.bias"], ["ln"], name="ln", axis=-1, epsilon=1e-5),
    n("Gemm", ["ln", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1)],
    [t("gshape", np.int64([0, 1, -1])), t("ones1", np.float32([1])), t("zeros1", np.float32([0])),
     t("back", np.int64([0, 1, 6, 6])), t("gn.weight", f32(1, 1, 1)), t("gn.bias", f32(1, 1, 1)),
     t("in.weight", f32(1)), t("in.bias", f32(1)), t("pads", np.int64([0, 0, 1, 1, 0, 0, 1, 1])),
     t("ln.weight", f32(9)), t("ln.bias", f32(9)), t("fc.weight", f32(3, 9)), t("fc.bias", f32(3))]))
print("corpus written to", os.path.join(HERE, "corpus"))
