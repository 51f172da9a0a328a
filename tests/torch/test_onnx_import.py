"""`normnet import` (docs/onnx.md, "Import"):

1. torch.onnx.export (Debian's torch 1.13, opset 17) of every zoo model (models/*.json through
   tools/normnet_torch.py's torch_model, with non-trivial BN affine parameters and running
   statistics) and of three hand-made networks with the layers the zoo lacks (grouped Conv2d, GroupNorm, LayerNorm,
   InstanceNorm, ELU, LeakyReLU, ceil-mode and padded pooling, count_include_pad padding written as
   a Pad node, Conv1d, MaxPool1d, BatchNorm1d, Flatten(1, 2) as shape arithmetic, AdaptiveAvgPool),
   both with TrainingMode.PRESERVE (BatchNormalization nodes kept) and EVAL (torch folds each BN
   that follows a Conv into it): `normnet import` then `normnet predict --logits` equals torch's
   eval-mode float64 output within 1e-5 relative. With PRESERVE, the zoo models' imported
   state_dict has torch's names and bit-identical values, and every BatchNorm's momentum and eps
   equal the zoo description's (ONNX momentum 0.9 -> PyTorch 0.1; 0.99 -> 0.01 for seed003-keras).
2. `normnet export` (with and without --fold) of those checkpoints, imported back: predict equals
   the original's within 1e-5; without --fold the tensors are the original's, name for name, bit
   for bit, and the normalization comes back from the file's metadata.
3. Conventions on hand-built graphs (onnx.helper) against numpy: BatchNormalization with momentum
   0.7 becomes momentum 0.3 and its input_var is the running_var as stored; Gemm with transB 0,
   alpha and beta; MatMul + Add as a Linear with bias.
4. Refusals, each on a crafted file: status 1, one message naming what is at fault, no output.
"""

import json
import os
import sys
import warnings


def main():
    import numpy as np
    import torch
    from torch import nn

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    from common import Checker, parse_args
    import interop
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError as e:
        interop.skip(f"Debian's python3-onnx is not installed ({e}); scripts/setup installs it")
    sys.path.insert(0, os.path.join(here, "..", "..", "tools"))
    import from_torch
    import normnet_st
    import normnet_torch

    args = parse_args()
    W = args.workdir
    probe = interop.run([args.normnet, "import", os.path.join(W, "none.onnx"), "-o", os.path.join(W, "none.st")],
                        expect_ok=False)
    if "without ONNX support" in probe.stderr:
        interop.skip(probe.stderr.strip())
    chk = Checker("onnx import")
    rng = np.random.default_rng(0)
    mean, std, n_images, tol = 0.3, 0.35, 4, 1e-5
    torch.set_num_threads(1)

    def imported(onnx_path, ckpt, extra=()):
        if os.path.exists(ckpt) and ckpt != onnx_path:
            os.remove(ckpt)
        return interop.run([args.normnet, "import", onnx_path, "-o", ckpt, *extra], expect_ok=False)

    def torch_export(net, shape, path, mode):
        if os.path.exists(path):
            os.remove(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, torch.zeros((2,) + tuple(shape)), path, opset_version=17,
                              training=mode, do_constant_folding=False, input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        net.eval()  # export may leave the module in another mode

    def bn_specs(layers):
        out = []
        for layer in layers:
            if layer["type"] in ("BatchNorm1d", "BatchNorm2d"):
                out.append(layer)
            for key in ("body", "shortcut"):
                out += bn_specs(layer.get(key) or [])
            for b in layer.get("branches", []):
                out += bn_specs(b["layers"])
        return out

    def hand_made_2d():
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.GroupNorm(2, 8), nn.ELU(alpha=0.7)),
            nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),            # 28 -> 15
            nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=2),              # -> 8
            nn.InstanceNorm2d(12, affine=True), nn.LeakyReLU(0.2),
            nn.AvgPool2d(2, padding=1, count_include_pad=False),             # -> 5
            nn.Conv2d(12, 16, 1), nn.BatchNorm2d(16, momentum=0.3), nn.ReLU(),
            nn.InstanceNorm2d(16), nn.Dropout(0.2),
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 24, 1), nn.Flatten(),
            nn.Linear(24, 32), nn.LayerNorm(32), nn.BatchNorm1d(32, eps=1e-3), nn.ReLU(),
            nn.Linear(32, 10))

    def hand_made_1d():
        return nn.Sequential(
            nn.Flatten(1, 2),                                                # (N, 28, 28): Shape, Slice, Concat, Reshape
            nn.Conv1d(28, 16, 5, padding=2), nn.BatchNorm1d(16, momentum=0.3), nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(16, 16, 3, padding=2, dilation=2, bias=False), nn.InstanceNorm1d(16, affine=True),
            nn.ELU(), nn.GroupNorm(4, 16), nn.LayerNorm([16, 14], eps=1e-4),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 7))

    def hand_made_pad():
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(),
                             nn.AvgPool2d(3, stride=2, padding=1),               # Pad + AveragePool
                             nn.Flatten(), nn.Linear(4 * 13 * 13, 10))

    # ------------------------------------------------------------ 1 and 2: torch and normnet files
    cases = []  # (name, make, input shape, zoo spec or None)
    for path in sorted(glob_models(args.models)):
        with open(path) as f:
            spec = json.load(f)
        cases.append((spec["name"], lambda spec=spec: normnet_torch.torch_model(spec), tuple(spec["input"]), spec))
    cases.append(("handmade2d", hand_made_2d, (1, 28, 28), None))
    cases.append(("handmade1d", hand_made_1d, (1, 28, 28), None))
    cases.append(("handmade-pad", hand_made_pad, (1, 28, 28), None))
    for i, (name, make, shape, spec) in enumerate(cases):
        chk.begin(name)
        torch.manual_seed(i)
        net = interop.prepare(make(), shape, mean, std)
        imgs = interop.random_images(rng, n_images, shape)
        x = interop.normalized(imgs, mean, std)
        want = interop.reference(net, x)
        for mode, tag in ((torch.onnx.TrainingMode.PRESERVE, "bn"), (torch.onnx.TrainingMode.EVAL, "eval")):
            path = os.path.join(W, f"{name}-torch-{tag}.onnx")
            torch_export(net, shape, path, mode)
            bn_nodes = sum(1 for n in onnx.load(path).graph.node if n.op_type == "BatchNormalization")
            ckpt = os.path.join(W, f"{name}-torch-{tag}.safetensors")
            r = imported(path, ckpt, ["--mean", str(mean), "--std", str(std)])
            if not chk.expect(r.returncode == 0, f"torch {tag}: import failed: {r.stderr.strip()}"):
                continue
            got = interop.predict(args, ckpt, imgs, f"{name}-torch-{tag}")
            chk.close(f"torch.onnx.export ({tag}, {bn_nodes} BatchNormalization) -> import -> predict vs torch",
                      got, want, tol)
            tensors, meta = normnet_st.read_safetensors(ckpt)
            desc = json.loads(meta["normnet.model"])
            chk.expect(json.loads(meta["normnet.normalization"]) == {"mean": np.float32(mean).item(),
                                                                    "std": np.float32(std).item()},
                       f"normalization {meta['normnet.normalization']}")
            if spec is None or tag != "bn":
                continue
            zoo_bns = bn_specs(spec["layers"])
            chk.expect(bn_nodes == len(zoo_bns), f"{bn_nodes} BatchNormalization nodes for {len(zoo_bns)} BatchNorms")
            state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
            chk.expect(set(tensors) == set(state),
                       f"state_dict names differ: {sorted(set(tensors) ^ set(state))[:6]}")
            for k in set(tensors) & set(state):
                if k.endswith("num_batches_tracked"):
                    chk.expect(int(tensors[k]) == 0, f"{k} = {tensors[k]}, expected 0 (not in ONNX)")
                else:
                    chk.expect(np.array_equal(tensors[k], state[k]), f"{k} differs from torch's")
            got_bns = bn_specs(desc["layers"])
            chk.expect(len(got_bns) == len(zoo_bns), f"{len(got_bns)} BatchNorm layers imported, {len(zoo_bns)} in the zoo")
            for a, b in zip(got_bns, zoo_bns):
                ok = abs(a["momentum"] - b.get("momentum", 0.1)) < 1e-12 and a["eps"] == b.get("eps", 1e-5)
                chk.expect(ok, f"BatchNorm '{a['name']}': momentum {a['momentum']} eps {a['eps']}, the zoo has "
                           f"{b.get('momentum', 0.1)} {b.get('eps', 1e-5)}")
        # normnet export -> import
        ckpt0 = os.path.join(W, f"{name}.safetensors")
        from_torch.save(net, shape, ckpt0, mean=mean, std=std, name=name)
        base = interop.predict(args, ckpt0, imgs, f"{name}-orig")
        t0, _ = normnet_st.read_safetensors(ckpt0)
        for fold in (False, True):
            tag = "folded" if fold else "bn"
            path = os.path.join(W, f"{name}-normnet-{tag}.onnx")
            if os.path.exists(path):
                os.remove(path)
            interop.run([args.normnet, "export", ckpt0, "-o", path] + (["--fold"] if fold else []))
            ckpt = os.path.join(W, f"{name}-normnet-{tag}.safetensors")
            r = imported(path, ckpt)
            if not chk.expect(r.returncode == 0, f"normnet {tag}: import failed: {r.stderr.strip()}"):
                continue
            got = interop.predict(args, ckpt, imgs, f"{name}-normnet-{tag}")
            chk.close(f"normnet export ({tag}) -> import -> predict vs predict", got, base, tol)
            t1, meta = normnet_st.read_safetensors(ckpt)
            chk.expect(json.loads(meta["normnet.normalization"]) == {"mean": np.float32(mean).item(),
                                                                    "std": np.float32(std).item()},
                       f"normalization from the metadata: {meta['normnet.normalization']}")
            if fold or name.startswith("handmade"):
                continue  # the hand-made ones hold layers exported as others (InstanceNorm with statistics)
            chk.expect(set(t1) == set(t0), f"tensor names differ: {sorted(set(t1) ^ set(t0))[:6]}")
            for k in set(t1) & set(t0):
                if not k.endswith("num_batches_tracked"):
                    chk.expect(np.array_equal(t1[k], t0[k]), f"{k} differs from the exported checkpoint's")
        chk.end()

    # ------------------------------------------------------------ 3: conventions on built graphs
    def tensor(name, arr):
        arr = np.asarray(arr)
        dt = TensorProto.FLOAT if arr.dtype == np.float32 else TensorProto.INT64
        return helper.make_tensor(name, dt, arr.shape, arr.tobytes(), raw=True)

    def model(nodes, inits, in_dims=("N", 1, 4, 4), out_dims=("N", 5), opset=17, outputs=None, inputs=None):
        g = helper.make_graph(
            nodes, "crafted",
            inputs or [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(in_dims))],
            outputs or [helper.make_tensor_value_info("logits", TensorProto.FLOAT, list(out_dims))],
            initializer=inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="test")
        m.ir_version = 8
        return m

    def save(m, name):
        path = os.path.join(W, f"{name}.onnx")
        with open(path, "wb") as f:
            f.write(m.SerializeToString() if hasattr(m, "SerializeToString") else m)
        return path

    g = np.random.default_rng(5)
    imgs = interop.random_images(rng, 3, (1, 4, 4))
    x = imgs.astype(np.float64) / 255.0  # mean 0, std 1

    chk.begin("conventions")
    # BatchNormalization on (N, 1, 4, 4) with ONNX momentum 0.7, epsilon 1e-3, then Flatten and Gemm.
    bn = dict(scale=np.float32([1.7]), B=np.float32([-0.2]), mean=np.float32([0.4]), var=np.float32([0.09]))
    fc_w = g.standard_normal((5, 16)).astype(np.float32)
    fc_b = g.standard_normal(5).astype(np.float32)
    nodes = [helper.make_node("BatchNormalization", ["input", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
                              ["y"], name="bn", epsilon=1e-3, momentum=0.7),
             helper.make_node("Flatten", ["y"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1)]
    inits = [tensor("bn.weight", bn["scale"]), tensor("bn.bias", bn["B"]), tensor("bn.running_mean", bn["mean"]),
             tensor("bn.running_var", bn["var"]), tensor("fc.weight", fc_w), tensor("fc.bias", fc_b)]
    path = save(model(nodes, inits), "conv-bn")
    ckpt = os.path.join(W, "conv-bn.safetensors")
    r = imported(path, ckpt)
    if chk.expect(r.returncode == 0, f"import failed: {r.stderr.strip()}"):
        tensors, meta = normnet_st.read_safetensors(ckpt)
        layer = json.loads(meta["normnet.model"])["layers"][0]
        chk.expect(layer["type"] == "BatchNorm2d" and layer["momentum"] == 0.3 and layer["eps"] == 1e-3,
                   f"BatchNorm layer {layer}: expected momentum 0.3 (1 - ONNX's 0.7), eps 0.001")
        chk.expect(np.array_equal(tensors["bn.running_var"], bn["var"]), "running_var is not input_var as stored")
        chk.expect(np.array_equal(tensors["bn.running_mean"], bn["mean"]), "running_mean is not input_mean")
        y = (x - 0.4) / np.sqrt(np.float64(np.float32(0.09)) + 1e-3) * np.float64(np.float32(1.7)) + np.float64(np.float32(-0.2))
        want = y.reshape(3, 16) @ fc_w.astype(np.float64).T + fc_b
        chk.close("BatchNormalization + Gemm vs numpy", interop.predict(args, ckpt, imgs, "conv-bn"), want, tol)

    # Gemm with transB 0, alpha 0.5, beta 2, and MatMul + Add.
    b_kn = g.standard_normal((16, 5)).astype(np.float32)
    for case, nodes, inits, want in (
            ("gemm-alpha-beta",
             [helper.make_node("Flatten", ["input"], ["f"], axis=1),
              helper.make_node("Gemm", ["f", "B", "C"], ["logits"], name="fc", alpha=0.5, beta=2.0)],
             [tensor("B", b_kn), tensor("C", fc_b)],
             0.5 * x.reshape(3, 16) @ b_kn.astype(np.float64) + 2.0 * fc_b),
            ("matmul-add",
             [helper.make_node("Flatten", ["input"], ["f"], axis=1),
              helper.make_node("MatMul", ["f", "W"], ["m"], name="fc/matmul"),
              helper.make_node("Add", ["m", "b"], ["logits"], name="fc/add")],
             [tensor("W", b_kn), tensor("b", fc_b)],
             x.reshape(3, 16) @ b_kn.astype(np.float64) + fc_b)):
        path = save(model(nodes, inits), case)
        ckpt = os.path.join(W, f"{case}.safetensors")
        r = imported(path, ckpt)
        if chk.expect(r.returncode == 0, f"{case}: import failed: {r.stderr.strip()}"):
            layers = json.loads(normnet_st.read_safetensors(ckpt)[1]["normnet.model"])["layers"]
            chk.expect([layer["type"] for layer in layers] == ["Flatten", "Linear"] and layers[1]["bias"],
                       f"{case}: layers {layers}")
            chk.close(f"{case} vs numpy", interop.predict(args, ckpt, imgs, case), want, tol)
    chk.end()

    # ------------------------------------------------------------ 4: refusals
    chk.begin("refusals")
    w3 = tensor("w", g.standard_normal((2, 1, 3, 3)).astype(np.float32))
    fc = tensor("fc.weight", g.standard_normal((5, 8)).astype(np.float32))
    tail = [helper.make_node("Flatten", ["c"], ["f"], axis=1), helper.make_node("Gemm", ["f", "fc.weight"], ["logits"], transB=1)]

    def conv_net(conv_attrs=None, first=None, extra_inits=()):
        """input (N, 1, 4, 4) -> Conv 3x3 -> (N, 2, 2, 2) -> Flatten -> Gemm (N, 5)."""
        first = first or [helper.make_node("Conv", ["input", "w"], ["c"], name="conv1", **(conv_attrs or {}))]
        return model(first + tail, [w3, fc, *extra_inits])

    def raw_tensor(name, dims, data, dt=TensorProto.FLOAT):
        t = TensorProto()
        t.name = name
        t.data_type = dt
        t.dims.extend(dims)
        t.raw_data = data
        return t

    def nested_residuals(depth):
        nodes, v = [], "input"
        # x_k = Add(Relu(x_{k-1} block), x_{k-1}) nested: block_k(x) = Add(block_{k-1}(Relu(x)), x)
        def block(k, inp):
            if k == 0:
                out = f"r{len(nodes)}"
                nodes.append(helper.make_node("Relu", [inp], [out]))
                return out
            pre = f"p{len(nodes)}"
            nodes.append(helper.make_node("Relu", [inp], [pre]))
            inner = block(k - 1, pre)
            out = f"a{len(nodes)}"
            nodes.append(helper.make_node("Add", [inner, inp], [out]))
            return out
        v = block(depth, "input")
        nodes.append(helper.make_node("Conv", [v, "w"], ["c"]))
        return model(nodes + tail, [w3, fc])

    ext = tensor("w", g.standard_normal((2, 1, 3, 3)).astype(np.float32))
    ext.ClearField("raw_data")
    ext.data_location = TensorProto.EXTERNAL
    ext.external_data.add(key="location", value="weights.bin")
    ext_model = model([helper.make_node("Conv", ["input", "w"], ["c"], name="conv1")] + tail, [ext, fc])
    typed = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 1, 3, 3], float_data=[0.5] * 17)
    shared = [helper.make_node("Relu", ["input"], ["a"], name="r1"),      # a feeds two blocks
              helper.make_node("Relu", ["a"], ["b"], name="r2"),
              helper.make_node("Add", ["b", "input"], ["s1"], name="add1"),
              helper.make_node("Add", ["s1", "a"], ["s2"], name="add2"),
              helper.make_node("Conv", ["s2", "w"], ["c"], name="conv1")]
    if_node = helper.make_node(
        "If", ["cond"], ["c"], name="branch",
        then_branch=helper.make_graph([], "then", [], [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)]),
        else_branch=helper.make_graph([], "else", [], [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)]))
    many = [helper.make_node("Identity", ["input" if k == 0 else f"i{k - 1}"], [f"i{k}"]) for k in range(10001)]
    many.append(helper.make_node("Conv", ["i10000", "w"], ["c"]))
    refusals = [
        # (case, model or bytes, words the message must hold)
        ("unsupported-op", conv_net(first=[helper.make_node("Sigmoid", ["input"], ["s"], name="act/sig"),
                                           helper.make_node("Conv", ["s", "w"], ["c"])]),
         ["operator 'Sigmoid'", "act/sig"]),
        ("external-data", ext_model, ["initializer 'w'", "external file", "weights.bin"]),
        ("raw-size", conv_net(first=[helper.make_node("Conv", ["input", "w2"], ["c"])],
                              extra_inits=[raw_tensor("w2", [2, 1, 3, 3], b"\0" * 70)]),
         ["initializer 'w2'", "raw_data holds 70 bytes", "needs 72"]),
        ("typed-count", model([helper.make_node("Conv", ["input", "w"], ["c"])] + tail, [typed, fc]),
         ["initializer 'w'", "float_data holds 17 values", "needs 18"]),
        ("rank", conv_net(extra_inits=[raw_tensor("big", [1] * 6, b"\0" * 4)]), ["initializer 'big'", "rank 6"]),
        ("zero-dim", conv_net(extra_inits=[raw_tensor("z", [3, 0], b"")]), ["initializer 'z'", "dimension 1 is 0"]),
        ("negative-dim", conv_net(extra_inits=[raw_tensor("z", [-2], b"")]), ["initializer 'z'", "dimension 0 is -2"]),
        ("dims-overflow", conv_net(extra_inits=[raw_tensor("z", [1 << 40, 1 << 40], b"")]),
         ["initializer 'z'", "more elements"]),
        ("kernel-shape", conv_net(first=[helper.make_node("MaxPool", ["input"], ["p"], name="pool", kernel_shape=[2]),
                                         helper.make_node("Conv", ["p", "w"], ["c"])]),
         ["pool", "'kernel_shape' has 1 values for 2 spatial dimensions"]),
        ("strides-length", conv_net({"strides": [1, 1, 1]}), ["conv1", "'strides' has 3 values for 2"]),
        ("pads-length", conv_net({"pads": [1, 1]}), ["conv1", "'pads' has 2 values"]),
        ("conv-kernel-attr", conv_net({"kernel_shape": [3]}), ["conv1", "kernel_shape [3] differs"]),
        ("asymmetric-pads", conv_net({"pads": [0, 0, 1, 1]}), ["conv1", "symmetric"]),
        ("subgraph", conv_net(first=[if_node], extra_inits=[raw_tensor("cond", [], b"\1", TensorProto.BOOL)]),
         ["branch", "(If)", "subgraph"]),
        ("too-many-nodes", model(many + tail, [w3, fc]), ["10004 nodes exceed the limit of 10000"]),
        ("nesting-depth", nested_residuals(70), ["nested deeper than 64"]),
        ("opset", model([helper.make_node("Conv", ["input", "w"], ["c"])] + tail, [w3, fc], opset=9), ["opset 9"]),
        ("order", model(tail + [helper.make_node("Conv", ["input", "w"], ["c"])], [w3, fc]),
         ["input 'c' is not defined before"]),
        ("domain", conv_net(first=[helper.make_node("FusedConv", ["input", "w"], ["c"], name="fc1",
                                                    domain="com.microsoft")]), ["fc1", "domain 'com.microsoft'"]),
        ("training-bn", conv_net(first=[
            helper.make_node("BatchNormalization", ["input", "s", "b", "s", "s"], ["y"], name="bn0", training_mode=1),
            helper.make_node("Conv", ["y", "w"], ["c"])],
            extra_inits=[tensor("s", np.float32([1])), tensor("b", np.float32([0]))]), ["bn0", "training_mode"]),
        ("shared-value", model(shared + tail, [w3, fc]), ["used by two branches"]),
        ("mul-constant", conv_net(first=[helper.make_node("Mul", ["input", "k"], ["m"], name="scale"),
                                         helper.make_node("Conv", ["m", "w"], ["c"])],
                                  extra_inits=[tensor("k", np.float32([2]))]), ["scale", "multiplication by a constant"]),
        ("pad-reflect", conv_net(first=[helper.make_node("Pad", ["input", "pp"], ["q"], name="pad0", mode="reflect"),
                                        helper.make_node("Conv", ["q", "w"], ["c"])],
                                 extra_inits=[tensor("pp", np.int64([0, 0, 1, 1, 0, 0, 1, 1]))]), ["pad0", "reflect"]),
        ("symbolic-dim", model([helper.make_node("Conv", ["input", "w"], ["c"])] + tail, [w3, fc],
                               in_dims=("N", 1, "H", 4)), ["dimension 2 is symbolic ('H')"]),
        ("two-outputs", model([helper.make_node("Conv", ["input", "w"], ["c"])] + tail, [w3, fc], outputs=[
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5]),
            helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", 2, 2, 2])]), ["2 outputs"]),
        ("not-onnx", b"\x08\x07garbage that protobuf cannot parse\xff\xff\xff", ["not an ONNX model"]),
    ]
    out = os.path.join(W, "refused.safetensors")
    for case, m, words in refusals:
        path = save(m, f"bad-{case}")
        r = imported(path, out)
        msg = r.stderr.strip()
        ok = r.returncode == 1 and msg.startswith("normnet: error:") and len(msg.splitlines()) == 1
        ok = ok and all(w in msg for w in words) and not os.path.exists(out)
        chk.expect(ok, f"{case}: status {r.returncode}, message {msg!r}, expected the words {words}")
        if ok:
            print(f"  {case}: {msg[len('normnet: error: '):][:150]}")
    # A file over the size limit (2 GiB - 1, protobuf's): sparse, so it costs no disk.
    big = os.path.join(W, "bad-huge.onnx")
    try:
        with open(big, "wb") as f:
            f.truncate(3 << 30)
        r = imported(big, out)
        chk.expect(r.returncode == 1 and "exceed the limit of 2147483647" in r.stderr and not os.path.exists(out),
                   f"huge file: status {r.returncode}, {r.stderr.strip()}")
    finally:
        if os.path.exists(big):
            os.remove(big)
    good = save(conv_net(), "good")
    r = imported(good, good)
    chk.expect(r.returncode == 1 and "is the input ONNX file" in r.stderr and os.path.getsize(good) > 0,
               f"-o = input: {r.stderr.strip()}")
    r = imported(good, os.path.join(W, "no-such-dir", "m.safetensors"))
    chk.expect(r.returncode == 1 and "no-such-dir" in r.stderr, f"missing directory: {r.stderr.strip()}")
    chk.finish()


def glob_models(models_dir):
    import glob
    return glob.glob(os.path.join(models_dir, "*.json"))


if __name__ == "__main__":
    sys.exit(main())
