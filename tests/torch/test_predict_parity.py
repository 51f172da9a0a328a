"""End to end: a checkpoint written by `normnet train` loads into PyTorch and gives the logits
`normnet predict` gives.

1. `normnet train --limit 2000 --epochs 1 --out WORKDIR/run --data DATA --quiet` (skipped, exit 0,
   when the Fashion-MNIST directory is missing).
2. The first 100 test images written as an IDX file of our own; `normnet predict CKPT IDX
   --logits WORKDIR/logits.safetensors`.
3. The checkpoint read with st.py: the torch model built from its "normnet.model" metadata,
   load_state_dict(strict=True) (every name, shape and dtype as PyTorch's state_dict, with
   num_batches_tracked an int64 scalar), eval mode, inputs normalized with its
   "normnet.normalization" as normnet does ((x/255 - mean) / std, in float32), forward in
   float64 and in float32.

Logits must agree with the float64 forward within 1e-4 of max|logits| (eval-mode BatchNorm
with running statistics is a fixed affine map, so nothing here is ill-conditioned: float32
rounding through two convolutions and a 3136-input linear layer is ~1e-6), and the predicted
classes must agree wherever the top two logits are further apart than that tolerance.

4. The containers: resnet20 (Residual blocks with 1x1-conv shortcuts) and densenet-bc40
   (Concat with identity branches) trained by `normnet train` for 4 steps on a small MNIST-format
   copy (interop.tiny_mnist: 128 training, 32 test images), read back with
   tools/normnet_torch.load (the module built from the checkpoint's description,
   load_state_dict(strict=True)): its float64 eval-mode output equals `normnet predict`'s within
   1e-5 relative.
"""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import torch

from common import Checker, parse_args, rel_err, torch_model
import interop
import st

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import normnet_torch  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
N = 100


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
        sys.exit(1)
    return r.stdout


def main():
    args = parse_args()
    images = os.path.join(DATA, "t10k-images-idx3-ubyte.gz")
    if not os.path.isdir(DATA) or not os.path.exists(images):
        print(f"skipped: {DATA} (Fashion-MNIST) is missing")
        return 0
    chk = Checker("predict parity")
    chk.begin("normnet train + predict vs torch")
    out_dir = os.path.join(args.workdir, "run")
    run([args.normnet, "train", "--limit", "2000", "--epochs", "1", "--out", out_dir,
         "--data", DATA, "--quiet"])
    ckpt = os.path.join(out_dir, "model.safetensors")

    with gzip.open(images, "rb") as f:
        raw = f.read()
    magic, count, rows, cols = np.frombuffer(raw[:16], dtype=">u4")
    assert magic == 0x803 and count >= N, (hex(magic), count)
    pixels = np.frombuffer(raw[16:16 + N * rows * cols], dtype=np.uint8).reshape(N, rows, cols)
    idx_path = os.path.join(args.workdir, f"test-first{N}-images-idx3-ubyte")
    with open(idx_path, "wb") as f:
        f.write(np.array([0x803, N, rows, cols], dtype=">u4").tobytes() + pixels.tobytes())
    logits_path = os.path.join(args.workdir, "logits.safetensors")
    if os.path.exists(logits_path):
        os.remove(logits_path)
    run([args.normnet, "predict", ckpt, idx_path, "--logits", logits_path])
    got = st.read_safetensors(logits_path)[0]["logits"]

    tensors, meta = st.read_safetensors(ckpt)
    spec = json.loads(meta["normnet.model"])
    norm = json.loads(meta["normnet.normalization"])
    for k, v in tensors.items():
        want = np.int64 if k.endswith("num_batches_tracked") else np.float32
        chk.expect(v.dtype == want, f"checkpoint tensor {k}: dtype {v.dtype}, expected {want}")
        if k.endswith("num_batches_tracked"):
            chk.expect(v.shape == () and v > 0, f"{k}: {v!r}, expected a positive int64 scalar")
    net = torch_model(spec)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    net.eval()
    tracked = sorted({int(v) for k, v in tensors.items() if k.endswith("num_batches_tracked")})
    print(f"  checkpoint: model {spec.get('name')}, {len(tensors)} tensors loaded strictly, "
          f"normalization {norm}, num_batches_tracked {tracked}")

    x = pixels.astype(np.float32).reshape(N, 1, rows, cols) / np.float32(255)
    x = (x - np.float32(norm["mean"])) / np.float32(norm["std"])
    with torch.no_grad():
        want64 = net.double()(torch.tensor(x, dtype=torch.float64)).numpy()
        want32 = net.float()(torch.tensor(x)).numpy()
    chk.close("logits vs torch float64", got, want64, 1e-4)
    chk.close("logits vs torch float32", got, want32, 1e-4)
    print(f"  logits ({N}, {got.shape[1]}): max rel err {rel_err(got, want64):.2e} vs float64, "
          f"{rel_err(got, want32):.2e} vs float32 (torch float32 vs float64: "
          f"{rel_err(want32, want64):.2e})")
    top2 = np.sort(want64, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-4 * np.max(np.abs(want64))
    same = got.argmax(1) == want64.argmax(1)
    chk.expect(bool(np.all(same[clear])),
               f"predicted classes differ for samples {np.nonzero(~same & clear)[0].tolist()}")
    labels_path = os.path.join(DATA, "t10k-labels-idx1-ubyte.gz")
    acc = ""
    if os.path.exists(labels_path):
        with gzip.open(labels_path, "rb") as f:
            labels = np.frombuffer(f.read()[8:8 + N], dtype=np.uint8)
        acc = f", accuracy on them {np.mean(got.argmax(1) == labels):.2f}"
    print(f"  predicted classes: {int(same.sum())}/{N} equal{acc}")

    data = os.path.join(args.workdir, "tiny-mnist")
    test_images = interop.tiny_mnist(data, 128, 32)
    for model in ("resnet20", "densenet-bc40"):
        chk.begin(f"{model}: normnet train (4 steps) -> normnet_torch.load")
        ckpt = interop.train_checkpoint(args, model, data, os.path.join(args.workdir, f"run-{model}"), 128)
        net, spec, norm = normnet_torch.load(ckpt)
        tracked = {int(v) for k, v in net.state_dict().items() if k.endswith("num_batches_tracked")}
        chk.expect(tracked == {4}, f"num_batches_tracked {tracked}, expected 4")
        got = interop.predict(args, ckpt, test_images, model)
        want = interop.reference(net, interop.normalized(test_images, norm["mean"], norm["std"]))
        chk.close("logits vs torch float64", got, want, 1e-5)
        print(f"  {model}: {len(net.state_dict())} tensors loaded strictly, logits {got.shape}, "
              f"max rel err {rel_err(got, want):.2e}")
    chk.finish()


if __name__ == "__main__":
    sys.exit(main())
