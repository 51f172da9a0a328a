"""Helpers of the interoperability tests (test_from_torch, test_safetensors_interop,
test_onnx_export, test_predict_parity):

    imgs = random_images(rng, n, (C, H, W))         # uint8 (n, C, H, W)
    x = normalized(imgs, mean, std)                 # float32, as normnet normalizes
    logits = predict(args, ckpt, imgs, "case")      # `normnet predict` on PNG files of them
    prepare(net, input_shape, mean, std)            # non-trivial affine and BN running statistics
    want = reference(net, x)                        # eval-mode forward in float64
    imgs = tiny_mnist(dir, n_train, n_test)         # a small MNIST-format training set
    ckpt = train_checkpoint(args, "resnet20", dir, out, limit)   # `normnet train`, a few steps
    python, why = venv_python(args.workdir)         # the cached test venv (safetensors, onnxruntime)
    SKIP                                            # exit status ctest counts as skipped

The test venv: `/usr/bin/python3 -m venv --system-site-packages` (so Debian's torch and numpy
stay visible) at BUILD/tests/torch_work/pyvenv, with `safetensors` and `onnxruntime` from PyPI,
numpy pinned to Debian's version (Debian's torch is built against it). Created once under a
lock and reused while it imports; when pip cannot install (no network), venv_python returns None
and the reason, and the tests that need it report SKIP (exit 77).
"""

import copy
import fcntl
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import torch
from torch import nn

SKIP = 77
VENV_PACKAGES = ["safetensors", "onnxruntime"]
VENV_CHECK = "import safetensors.torch, safetensors.numpy, onnxruntime, torch, numpy"


# ---------------------------------------------------------------- inputs and predict

def random_images(rng, n, shape):
    return rng.integers(0, 256, size=(n,) + tuple(shape), dtype=np.uint8)


def normalized(imgs, mean, std):
    """float32 (pixel/255 - mean) / std, the operations normnet does."""
    x = imgs.astype(np.float32) / np.float32(255)
    return (x - np.float32(mean)) / np.float32(std)


def write_png(path, img):
    """A minimal 8-bit PNG of a (C, H, W) uint8 image, C = 1 (gray) or 3 (RGB)."""
    c, h, w = img.shape
    rows = np.ascontiguousarray(img.transpose(1, 2, 0)).reshape(h, w * c)
    raw = b"".join(b"\x00" + rows[i].tobytes() for i in range(h))  # filter 0 on every row

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, {1: 0, 3: 2}[c], 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))


def run(cmd, expect_ok=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {' '.join(map(str, cmd))}\n"
                           f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


def predict(args, ckpt, imgs, case):
    """`normnet predict CKPT PNG... --logits` on imgs (n, C, H, W) uint8: the logits (n, K)."""
    import st
    d = os.path.join(args.workdir, f"{case}-png")
    os.makedirs(d, exist_ok=True)
    paths = []
    for i, img in enumerate(imgs):
        paths.append(os.path.join(d, f"{i}.png"))
        write_png(paths[-1], img)
    out = os.path.join(args.workdir, f"{case}-logits.safetensors")
    if os.path.exists(out):
        os.remove(out)
    run([args.normnet, "predict", ckpt, *paths, "--logits", out, "--threads", "1"])
    return st.read_safetensors(out)[0]["logits"]


# ---------------------------------------------------------------- a small training set

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def tiny_mnist(directory, n_train, n_test, seed=0):
    """An MNIST-format directory (uncompressed IDX files) with the first n_train / n_test
    Fashion-MNIST images and labels, or random ones when the dataset is not installed, so
    `normnet train --data DIR` runs a few steps and evaluates quickly. Returns the test images
    (n_test, 1, 28, 28) uint8."""
    import gzip
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    test_images = None
    for split, n in (("train", n_train), ("t10k", n_test)):
        src = os.path.join(FASHION_MNIST, f"{split}-images-idx3-ubyte.gz")
        if os.path.exists(src):
            with gzip.open(src, "rb") as f:
                images = np.frombuffer(f.read(16 + n * 784)[16:], dtype=np.uint8).reshape(n, 28, 28)
            with gzip.open(os.path.join(FASHION_MNIST, f"{split}-labels-idx1-ubyte.gz"), "rb") as f:
                labels = np.frombuffer(f.read(8 + n)[8:], dtype=np.uint8)
        else:
            images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
            labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        with open(os.path.join(directory, f"{split}-images-idx3-ubyte"), "wb") as f:
            f.write(np.array([0x803, n, 28, 28], dtype=">u4").tobytes() + images.tobytes())
        with open(os.path.join(directory, f"{split}-labels-idx1-ubyte"), "wb") as f:
            f.write(np.array([0x801, n], dtype=">u4").tobytes() + labels.tobytes())
        if split == "t10k":
            test_images = images.reshape(n, 1, 28, 28).copy()
    return test_images


def train_checkpoint(args, model, data, out, limit, batch_size=32):
    """`normnet train` for one epoch on the first `limit` images (a few steps): the checkpoint."""
    run([args.normnet, "train", "--model", model, "--data", data, "--limit", str(limit), "--epochs", "1",
         "--batch-size", str(batch_size), "--out", out, "--quiet", "--threads", "1"])
    return os.path.join(out, "model.safetensors")


# ---------------------------------------------------------------- torch models

def prepare(net, input_shape, mean, std, seed=0, steps=3, batch=6):
    """Gives `net` non-trivial normalization parameters and running statistics: affine weights
    U(0.5, 1.5) and biases U(-0.3, 0.3), then `steps` training-mode forwards on random images
    (which move running_mean/running_var off 0/1 and count num_batches_tracked). Ends in eval."""
    g = torch.Generator().manual_seed(seed)
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm1d,
             nn.InstanceNorm2d)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, norms) and getattr(m, "weight", None) is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.6 - 0.3)
        rng = np.random.default_rng(seed)
        net.train()
        for _ in range(steps):
            net(torch.from_numpy(normalized(random_images(rng, batch, input_shape), mean, std)))
    return net.eval()


def reference(net, x):
    """Eval-mode forward of a float64 copy of net on x (float32 numpy): float64 numpy."""
    ref = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        return ref(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()


# ---------------------------------------------------------------- the test venv

def venv_dir(workdir):
    return os.path.join(os.path.dirname(os.path.abspath(workdir)), "pyvenv")


def _imports(python):
    try:
        return subprocess.run([python, "-c", VENV_CHECK], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def venv_python(workdir):
    """(path of the venv's python, None) or (None, why it could not be made)."""
    d = venv_dir(workdir)
    python = os.path.join(d, "bin", "python")
    stamp = os.path.join(d, "normnet-packages")
    os.makedirs(os.path.dirname(d), exist_ok=True)
    with open(d + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel ctest runs share one venv
        if os.path.exists(stamp) and open(stamp).read().split() == VENV_PACKAGES and _imports(python):
            return python, None
        shutil.rmtree(d, ignore_errors=True)
        print(f"creating the test venv {d} (pip install {' '.join(VENV_PACKAGES)})", flush=True)
        r = subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", d],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"/usr/bin/python3 -m venv failed: {r.stderr.strip()[-500:]}"
        pins = os.path.join(d, "constraints.txt")
        with open(pins, "w") as f:
            f.write(f"numpy=={np.__version__}\n")  # Debian's torch is built against it
        try:
            r = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check",
                                "--no-input", "--timeout", "20", "--retries", "1", "-c", pins,
                                *VENV_PACKAGES], capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            shutil.rmtree(d, ignore_errors=True)
            return None, "pip install timed out after 900 s"
        if r.returncode != 0:
            last = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or [""]
            shutil.rmtree(d, ignore_errors=True)
            return None, f"pip install {' '.join(VENV_PACKAGES)} failed (no network to PyPI?): {last[0]}"
        if not _imports(python):
            shutil.rmtree(d, ignore_errors=True)
            return None, f"the venv does not import its packages ({VENV_CHECK})"
        with open(stamp, "w") as f:
            f.write(" ".join(VENV_PACKAGES) + "\n")
        return python, None


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)
