"""`normnet fold` vs PyTorch's own fusion: folded weights equal torch.nn.utils.fusion's.

1. `normnet train` (200 Fashion-MNIST images, 1 epoch; skipped, exit 0, when the data is missing)
   of a model with a Conv2d without bias -> BatchNorm2d, a Conv2d with bias -> BatchNorm2d
   (eps 1e-3, affine), a Residual block whose body ends in a Conv2d -> BatchNorm2d and whose
   shortcut is a 1x1 Conv2d -> BatchNorm2d, Linear -> BatchNorm1d, and a BatchNorm2d after a
   ReLU (not foldable: kept).
2. `normnet fold CKPT -o FOLDED`.
3. For every folded pair, the original conv/linear and BN are rebuilt in torch from the
   checkpoint, in eval mode, and fused with torch.nn.utils.fusion.fuse_conv_bn_eval /
   fuse_linear_bn_eval; the folded checkpoint's weight and bias must match them.
4. The folded checkpoint's model (its rewritten description, loaded strictly) must give the
   original model's eval-mode logits, both run in torch float64.

Tolerances. torch fuses in float32 (rsqrt, a product and a sum, ~3 roundings), normnet in
double rounded once, so they differ by a few float32 ulps: 2e-6 of the tensor's largest
magnitude. Logits: both models in float64 from float32 weights; the folded weights carry one
float32 rounding (2^-24 relative), so 1e-5 of max|logits| is generous while a wrong channel,
eps or shift is far outside it.
"""

import json
import os
import subprocess
import sys

import numpy as np
import torch
from torch import nn
from torch.nn.utils import fusion

from common import Checker, parse_args, rel_err, torch_model
import st

DATA = "/usr/share/datasets/fashion-mnist"

MODEL = {
    "name": "fold-parity",
    "input": [1, 28, 28],
    "classes": 10,
    "layers": [
        {"type": "Conv2d", "name": "conv1", "in_channels": 1, "out_channels": 6, "kernel_size": 3,
         "padding": 1, "bias": False},
        {"type": "BatchNorm2d", "name": "bn1", "num_features": 6},
        {"type": "ReLU", "name": "relu1"},
        {"type": "MaxPool2d", "name": "pool1", "kernel_size": 2},
        {"type": "Conv2d", "name": "conv2", "in_channels": 6, "out_channels": 8, "kernel_size": 3,
         "padding": 1},
        {"type": "BatchNorm2d", "name": "bn2", "num_features": 8, "eps": 0.001},
        {"type": "ReLU", "name": "relu2"},
        {"type": "Residual", "name": "block", "activation": "ReLU",
         "body": [
             {"type": "Conv2d", "name": "conv1", "in_channels": 8, "out_channels": 8,
              "kernel_size": 3, "padding": 1, "bias": False},
             {"type": "BatchNorm2d", "name": "bn1", "num_features": 8}],
         "shortcut": [
             {"type": "Conv2d", "name": "0", "in_channels": 8, "out_channels": 8, "kernel_size": 1,
              "bias": False},
             {"type": "BatchNorm2d", "name": "1", "num_features": 8}]},
        {"type": "BatchNorm2d", "name": "bn_after_relu", "num_features": 8},
        {"type": "MaxPool2d", "name": "pool2", "kernel_size": 2},
        {"type": "Flatten", "name": "flatten"},
        {"type": "Linear", "name": "fc1", "in_features": 392, "out_features": 16},
        {"type": "BatchNorm1d", "name": "bn3", "num_features": 16},
        {"type": "ReLU", "name": "relu3"},
        {"type": "Linear", "name": "fc2", "in_features": 16, "out_features": 10},
    ],
}

# (layer, its BN) as state_dict prefixes; conv or linear by kind.
PAIRS = [("conv1", "bn1", 2), ("conv2", "bn2", 2), ("block.conv1", "block.bn1", 2),
         ("block.shortcut.0", "block.shortcut.1", 2), ("fc1", "bn3", 0)]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
        sys.exit(1)
    return r.stdout


def bn_eps(prefix):
    return {"bn2": 1e-3}.get(prefix, 1e-5)  # as MODEL says


def main():
    args = parse_args()
    if not os.path.exists(os.path.join(DATA, "train-images-idx3-ubyte.gz")):
        print(f"skipped: {DATA} (Fashion-MNIST) is missing")
        return 0
    chk = Checker("fold parity")
    model_path = os.path.join(args.workdir, "fold-parity.json")
    with open(model_path, "w") as f:
        json.dump(MODEL, f)
    out_dir = os.path.join(args.workdir, "run")
    run([args.normnet, "train", "--model", model_path, "--limit", "200", "--epochs", "1",
         "--batch-size", "50", "--out", out_dir, "--data", DATA, "--quiet"])
    ckpt = os.path.join(out_dir, "model.safetensors")
    folded_path = os.path.join(args.workdir, "folded.safetensors")
    if os.path.exists(folded_path):
        os.remove(folded_path)
    report = run([args.normnet, "fold", ckpt, "-o", folded_path])
    print("  " + report.strip().replace("\n", "\n  "))
    chk.expect("kept BatchNorm2d 'bn_after_relu'" in report, "fold did not report bn_after_relu kept")

    orig, _ = st.read_safetensors(ckpt)
    folded, meta = st.read_safetensors(folded_path)
    chk.begin("folded weights vs torch.nn.utils.fusion")
    for layer, bn_name, dims in PAIRS:
        w = torch.from_numpy(orig[layer + ".weight"])
        has_bias = layer + ".bias" in orig
        if dims == 2:
            mod = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), bias=has_bias)
        else:
            mod = nn.Linear(w.shape[1], w.shape[0], bias=has_bias)
        bn = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(w.shape[0], eps=bn_eps(bn_name))
        sd = {"weight": w}
        if has_bias:
            sd["bias"] = torch.from_numpy(orig[layer + ".bias"])
        mod.load_state_dict(sd)
        bn.load_state_dict({k: torch.from_numpy(orig[f"{bn_name}.{k}"]) for k in
                            ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")})
        mod.eval()
        bn.eval()
        fused = (fusion.fuse_conv_bn_eval if dims == 2 else fusion.fuse_linear_bn_eval)(mod, bn)
        chk.expect(bn_name + ".running_mean" not in folded, f"{bn_name} still in the folded checkpoint")
        chk.close(f"{layer}.weight", folded[layer + ".weight"], fused.weight, 2e-6)
        chk.close(f"{layer}.bias", folded[layer + ".bias"], fused.bias, 2e-6)

    chk.begin("folded model vs original model (torch float64, eval)")
    spec = json.loads(meta["normnet.model"])
    net_f = torch_model(spec)
    net_f.load_state_dict({k: torch.from_numpy(v) for k, v in folded.items()}, strict=True)
    net_o = torch_model(MODEL)
    net_o.load_state_dict({k: torch.from_numpy(v) for k, v in orig.items()}, strict=True)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((16, 1, 28, 28)))
    with torch.no_grad():
        want = net_o.double().eval()(x).numpy()
        got = net_f.double().eval()(x).numpy()
    chk.close("logits", got, want, 1e-5)
    print(f"  logits: rel err {rel_err(got, want):.2e}")
    chk.finish()


if __name__ == "__main__":
    sys.exit(main())
