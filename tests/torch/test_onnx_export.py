"""`normnet export` (docs/onnx.md): for every zoo model (models/*.json) and two hand-made
networks with the layers the zoo lacks (GroupNorm, LayerNorm, InstanceNorm with and without
running statistics, ELU, LeakyReLU, padded and ceil-mode pooling, AvgPool without
count_include_pad, Conv1d, BatchNorm1d, cumulative-momentum BatchNorm, Dropout):

1. A checkpoint with non-trivial weights and running statistics (the torch module prepared as
   in test_from_torch and written by tools/from_torch.py), `normnet predict --logits` on random
   PNG images.
2. `normnet export CKPT -o M.onnx` and `--fold`: onnx.checker.check_model(full_check) (Debian's
   python3-onnx); opset 17; input "input" (N, C, H, W) with the symbolic batch "N", output
   "logits" (N, classes); one BatchNormalization per BatchNorm layer with epsilon and momentum
   = 1 - PyTorch's (absent for cumulative averaging); with --fold only the BatchNorms the fold
   keeps (`normnet fold`'s rules).
3. onnxruntime (PyPI, in the cached test venv; tests/torch/interop.py) on the same normalized
   input equals normnet's logits within 1e-5 relative (max|diff| / max|want|), both files.
4. Refusals: a BatchNorm without running statistics and a missing output directory give status
   1 and a message naming the layer or the file.

Without the venv (no network for pip) everything but step 3 runs and the test reports SKIP
(exit 77).
"""

import glob
import json
import os
import sys

ORT_WORKER = "--ort-worker"


def ort_worker(jobs_path):
    """Runs in the venv: each job {"onnx", "input", "output"} (npy files) through onnxruntime."""
    import numpy as np
    import onnxruntime as ort
    with open(jobs_path) as f:
        jobs = json.load(f)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    for job in jobs:
        sess = ort.InferenceSession(job["onnx"], opts, providers=["CPUExecutionProvider"])
        x = np.load(job["input"])
        (y,) = sess.run(["logits"], {"input": x})
        np.save(job["output"], y)
    print(f"onnxruntime {ort.__version__}: {len(jobs)} models run")
    return 0


def main():
    import numpy as np
    import torch
    from torch import nn

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import Checker, parse_args, rel_err
    import interop
    try:
        import onnx
    except ImportError as e:
        interop.skip(f"Debian's python3-onnx is not installed ({e}); scripts/setup installs it")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
    import from_torch
    import normnet_torch
    from test_from_torch import hand_made_1d, hand_made_2d

    args = parse_args()
    probe = interop.run([args.normnet, "export", os.path.join(args.workdir, "none.safetensors"), "-o",
                         os.path.join(args.workdir, "none.onnx")], expect_ok=False)
    if "without ONNX support" in probe.stderr:
        interop.skip(probe.stderr.strip())
    chk = Checker("onnx export")
    rng = np.random.default_rng(0)
    mean, std, n_images, tol = 0.3, 0.35, 4, 1e-5
    cases = []  # (name, torch module, input shape)
    for path in sorted(glob.glob(os.path.join(args.models, "*.json"))):
        with open(path) as f:
            spec = json.load(f)
        cases.append((spec["name"], lambda spec=spec: normnet_torch.torch_model(spec), spec["input"]))
    cases.append(("handmade2d", hand_made_2d, (1, 28, 28)))
    cases.append(("handmade1d", hand_made_1d, (1, 28, 28)))

    def bn_layers(layers):
        """BatchNorm-like layer specs of a description, depth first."""
        out = []
        for layer in layers:
            t = layer["type"]
            if t in ("BatchNorm1d", "BatchNorm2d"):
                out.append(layer)
            if t == "InstanceNorm1d" or t == "InstanceNorm2d":
                if layer.get("track_running_stats"):
                    out.append(layer)
            for key in ("body", "shortcut"):
                out += bn_layers(layer.get(key) or [])
            for b in layer.get("branches", []):
                out += bn_layers(b["layers"])
        return out

    jobs, expected = [], []
    for i, (name, make, shape) in enumerate(cases):
        chk.begin(name)
        torch.manual_seed(i)
        net = interop.prepare(make(), shape, mean, std)
        ckpt = os.path.join(args.workdir, f"{name}.safetensors")
        spec = from_torch.save(net, shape, ckpt, mean=mean, std=std, name=name)
        imgs = interop.random_images(rng, n_images, shape)
        x = interop.normalized(imgs, mean, std)
        got = interop.predict(args, ckpt, imgs, name)
        chk.close("normnet predict vs torch float64", got, interop.reference(net, x), tol)
        xin = os.path.join(args.workdir, f"{name}-input.npy")
        np.save(xin, x)
        bns = bn_layers(spec["layers"])
        for fold in (False, True):
            tag = "folded" if fold else "bn"
            out = os.path.join(args.workdir, f"{name}-{tag}.onnx")
            if os.path.exists(out):
                os.remove(out)
            r = interop.run([args.normnet, "export", ckpt, "-o", out] + (["--fold"] if fold else []))
            kept = sum(1 for line in r.stdout.splitlines() if line.startswith("kept "))
            model = onnx.load(out)
            try:
                onnx.checker.check_model(model, full_check=True)
            except Exception as e:  # noqa: BLE001 - any checker failure is a test failure
                chk.fail(f"{tag}: onnx.checker: {e}")
                continue
            g = model.graph
            opset = {o.domain: o.version for o in model.opset_import}
            chk.expect(opset.get("") == 17, f"{tag}: opset {opset}")
            dims = [d.dim_param or d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
            chk.expect(g.input[0].name == "input" and dims == ["N"] + list(shape), f"{tag}: input {dims}")
            dims = [d.dim_param or d.dim_value for d in g.output[0].type.tensor_type.shape.dim]
            chk.expect(g.output[0].name == "logits" and dims == ["N", spec["classes"]], f"{tag}: output {dims}")
            bn_nodes = [n for n in g.node if n.op_type == "BatchNormalization"]
            if fold:  # the BatchNorms the fold keeps, and InstanceNorms with running statistics
                inorms = sum(1 for b in bns if b["type"].startswith("InstanceNorm"))
                chk.expect(len(bn_nodes) == kept + inorms, f"folded: {len(bn_nodes)} BatchNormalization "
                           f"nodes, {kept} BatchNorm layers kept, {inorms} InstanceNorm with statistics")
            else:
                chk.expect(len(bn_nodes) == len(bns), f"{len(bn_nodes)} BatchNormalization nodes for "
                           f"{len(bns)} BatchNorm layers")
                for node, layer in zip(bn_nodes, bns):
                    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                    m = layer.get("momentum", 0.1)
                    eps = layer.get("eps", 1e-5)
                    ok = abs(attrs.get("epsilon", -1) - eps) <= 1e-6 * eps
                    ok = ok and ((m is None and "momentum" not in attrs)
                                 or (m is not None and abs(attrs["momentum"] - (1 - m)) < 1e-6))
                    chk.expect(ok, f"{node.name}: attributes {attrs} for {layer}")
            res = os.path.join(args.workdir, f"{name}-{tag}-ort.npy")
            if os.path.exists(res):
                os.remove(res)
            jobs.append({"onnx": out, "input": xin, "output": res})
            expected.append((name, tag, got))
        chk.end()

    # Refusals.
    chk.begin("refusals")
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), nn.Flatten(),
                        nn.Linear(4 * 26 * 26, 10))
    ckpt = os.path.join(args.workdir, "no-running-stats.safetensors")
    from_torch.save(net, (1, 28, 28), ckpt)
    for extra in ([], ["--fold"]):
        r = interop.run([args.normnet, "export", ckpt, "-o", os.path.join(args.workdir, "bad.onnx")] + extra,
                        expect_ok=False)
        chk.expect(r.returncode == 1 and "BatchNorm2d '1'" in r.stderr and "track_running_stats" in r.stderr,
                   f"{extra}: status {r.returncode}, stderr {r.stderr.strip()}")
    r = interop.run([args.normnet, "export", os.path.join(args.workdir, "seed001.safetensors"), "-o",
                     os.path.join(args.workdir, "no-such-dir", "m.onnx")], expect_ok=False)
    chk.expect(r.returncode == 1 and "no-such-dir" in r.stderr, f"status {r.returncode}, stderr {r.stderr.strip()}")
    chk.end()

    python, why = interop.venv_python(args.workdir)
    if python is None:
        print(f"export and onnx.checker: {len(chk.failures)} failures")
        if chk.failures:
            chk.finish()
        interop.skip(f"onnxruntime comparison not run: {why}")
    jobs_path = os.path.join(args.workdir, "ort-jobs.json")
    with open(jobs_path, "w") as f:
        json.dump(jobs, f)
    r = interop.run([python, os.path.abspath(__file__), ORT_WORKER, jobs_path], expect_ok=False)
    print(r.stdout.strip())
    if r.returncode != 0:
        chk.fail(f"onnxruntime worker failed: {r.stderr.strip()[-3000:]}")
        chk.finish()
    for job, (name, tag, want) in zip(jobs, expected):
        chk.begin(f"{name} onnxruntime ({tag})")
        chk.close(f"onnxruntime vs normnet predict ({tag})", np.load(job["output"]), want, tol)
    worst = {}
    for job, (name, tag, want) in zip(jobs, expected):
        worst[name] = max(worst.get(name, 0.0), rel_err(np.load(job["output"]), want))
    print("  max rel err onnxruntime vs normnet per model: "
          + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    chk.finish()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == ORT_WORKER:
        sys.exit(ort_worker(sys.argv[2]))
    sys.exit(main())
