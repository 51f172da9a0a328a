"""The model zoo against PyTorch.

For every models/*.json: the same network built in PyTorch from the JSON (common.torch_model)
has the parameter count `normnet models` prints, and its state_dict loads into normnet with the
same names and shapes (parity_runner's load_state_dict refuses any difference). For the deep
networks (ResNet-20, ResNet-18, VGG-11-BN, DenseNet-BC, small Inception, both input sizes) one
training-mode forward and backward on a batch of 4 gives the same output, input gradient,
parameter gradients and updated running statistics as PyTorch in float64. Also checks that
tools/gen_zoo.py would write the zoo files as they are, and a Concat block's parity on its own.
"""

import json
import os
import subprocess
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Checker, module_spec, parse_args, run_module_case, run_runner, state_numpy, torch_model  # noqa: E402

DEEP = ["resnet20", "resnet18", "vgg11-bn", "densenet-bc40", "inception-small"]


def biases_before_batchnorm(layers, prefix=""):
    """Names of convolution biases that feed a BatchNorm directly: their gradient is zero in
    exact arithmetic (BN subtracts the batch mean), so only its size can be compared."""
    out = []
    for i, l in enumerate(layers):
        name = prefix + l.get("name", str(i))
        if l["type"] == "Conv2d" and l.get("bias", True) and i + 1 < len(layers) \
                and layers[i + 1]["type"].startswith("BatchNorm"):
            out.append(name + ".bias")
        if l["type"] == "Residual":
            out += biases_before_batchnorm(l["body"], name + ".")
            out += biases_before_batchnorm(l.get("shortcut") or [], name + "." + l.get("shortcut_name", "shortcut") + ".")
        if l["type"] == "Concat":
            for j, b in enumerate(l["branches"]):
                out += biases_before_batchnorm(b["layers"], name + "." + b.get("name", str(j)) + ".")
    return out


def zero_grad_tol(layers, tol):
    zero = set(biases_before_batchnorm(layers))
    return lambda what: float("inf") if what.split(" ")[-1] in zero and " grad " in what else tol


def check_zero_grads(chk, layers, out, want):
    """Gradients that are zero in exact arithmetic: float32 leaves at most rounding noise, far
    below the weights' gradients."""
    for i, w in enumerate(want):
        scale = max(float(np.max(np.abs(g.numpy()))) for g in w["grad"].values())
        for k in biases_before_batchnorm(layers):
            got = float(np.max(np.abs(out[f"grad.{i}.{k}"])))
            chk.expect(got <= 1e-5 * scale, f"step {i} grad {k}: {got:.3e}, expected ~0 (scale {scale:.3e})")


def main():
    args = parse_args()
    chk = Checker("zoo_params")

    # The zoo files are what the generator writes.
    chk.begin("gen_zoo --check")
    gen = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "gen_zoo.py")
    r = subprocess.run([sys.executable, gen, "--check"], capture_output=True, text=True)
    chk.expect(r.returncode == 0, f"tools/gen_zoo.py --check: {r.stdout.strip()} {r.stderr.strip()}")

    # Parameter counts as `normnet models` prints them.
    out = subprocess.run([args.normnet, "models"], capture_output=True, text=True, check=True,
                         env=dict(os.environ, NORMNET_MODELS=args.models)).stdout
    counts = {}
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])

    names = sorted(f[:-5] for f in os.listdir(args.models) if f.endswith(".json"))
    for name in names:
        with open(os.path.join(args.models, name + ".json")) as f:
            spec = json.load(f)
        chk.begin(name)
        net = torch_model(spec)
        n_torch = sum(p.numel() for p in net.parameters())
        chk.expect(counts.get(name) == n_torch,
                   f"normnet models says {counts.get(name)} parameters, PyTorch {n_torch}")
        # state_dict names and shapes: normnet loads PyTorch's state_dict and returns its own.
        state = state_numpy(net)
        x = np.zeros((1,) + tuple(spec["input"]), dtype=np.float32)
        tensors = {f"state.{k}": v for k, v in state.items()}
        tensors["x.0"] = x
        op = {"mode": "module", "model": module_spec(spec["layers"], spec["input"]), "train": False, "steps": 1}
        try:
            got = run_runner(args, f"names-{name}", op, tensors)
        except Exception as e:  # noqa: BLE001
            chk.fail(str(e))
            continue
        got_names = sorted(k[len("state.0."):] for k in got if k.startswith("state.0."))
        chk.expect(got_names == sorted(state), f"state_dict names differ: normnet {got_names[:6]}..., "
                   f"torch {sorted(state)[:6]}...")
        for k, v in state.items():
            if f"state.0.{k}" in got:
                chk.close(f"{k} (loaded)", got[f"state.0.{k}"].reshape(v.shape), v, 0.0)

    # Forward and backward of the deep networks in training mode.
    rng = np.random.default_rng(0)
    for base in DEEP:
        for name in (base, base + "-c32"):
            with open(os.path.join(args.models, name + ".json")) as f:
                spec = json.load(f)
            # Dropout (VGG's classifier) draws different masks in each library: run it with p = 0.
            # Max pooling becomes average pooling here: over a deep net, float32 and float64 round
            # near-ties differently, so a few argmaxes flip and move whole gradient entries (max
            # pooling's own parity is in test_layers_parity.py).
            text = json.dumps(spec["layers"]).replace('"p": 0.5', '"p": 0.0')
            layers = json.loads(text.replace('"MaxPool2d"', '"AvgPool2d"'))
            # ReLU has the same kind of tie: an input within float32 rounding (~1e-6) of 0 can
            # pass in one library and not in the other, and with batch 4 one such element moves
            # its channel's BatchNorm gradients by ~1e-2 (vgg11-bn-c32's first draw has a BN
            # output of 2e-7 before a ReLU; the deep nets have too many ReLU inputs for a draw
            # to avoid every tie). So ReLU becomes ELU here, which is smooth at 0 (ReLU's own
            # parity is in test_layers_parity.py, the fused BN+ReLU path's in
            # test_seed001_training_parity.py and kernels_fused_test).
            layers = json.loads(json.dumps(layers).replace('"ReLU"', '"ELU"'))
            x = rng.standard_normal((4,) + tuple(spec["input"])).astype(np.float32)
            dy = rng.standard_normal((4, spec["classes"])).astype(np.float32)
            out, want = run_module_case(args, chk, f"{name} train step", layers, [x], [dy], train=True,
                                        tol=zero_grad_tol(layers, 2e-4))
            check_zero_grads(chk, layers, out, want)

    # A Concat block on its own: identity, conv, conv-BN-ReLU, max-pool branches.
    layers = [{"type": "Concat", "name": "cat", "branches": [
        {"name": "input", "layers": []},
        {"name": "b3", "layers": [{"type": "Conv2d", "name": "conv", "in_channels": 3, "out_channels": 4,
                                    "kernel_size": 3, "padding": 1}]},
        {"name": "b1", "layers": [{"type": "Conv2d", "name": "conv", "in_channels": 3, "out_channels": 2,
                                    "kernel_size": 1},
                                   {"type": "BatchNorm2d", "name": "bn", "num_features": 2},
                                   {"type": "ReLU", "name": "relu"}]},
        {"name": "pool", "layers": [{"type": "MaxPool2d", "kernel_size": 3, "stride": 1, "padding": 1}]}]}]
    xs = [rng.standard_normal((3, 3, 6, 6)).astype(np.float32) for _ in range(2)]
    dys = [rng.standard_normal((3, 12, 6, 6)).astype(np.float32) for _ in range(2)]
    out, want = run_module_case(args, chk, "Concat block", layers, xs, dys, train=True,
                                tol=zero_grad_tol(layers, 1e-5))
    check_zero_grads(chk, layers, out, want)
    chk.finish()


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
