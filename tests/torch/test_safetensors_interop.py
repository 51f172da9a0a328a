"""normnet's safetensors reader and writer against the `safetensors` Python package (PyPI, in
the cached test venv of tests/torch/interop.py; SKIP, exit 77, when pip cannot install it).
The script re-runs itself with the venv's python (which also sees Debian's torch and numpy).

1. Files written by safetensors.torch.save_file (F32, F64, F16, BF16, I64, I32, I16, I8, U8,
   BOOL; scalars, empty and non-square shapes; unicode names and metadata) and by
   safetensors.numpy.save_file (adds U16, U32, U64) are read by normnet (parity_runner's "echo"
   mode: read with normnet's reader, written back with normnet's writer); the package reads the
   result back with every tensor bit-identical, the same dtypes and shapes, and the metadata.
2. A normnet checkpoint written by safetensors.torch.save_file (a torch resnet20 with
   non-trivial running statistics, the normnet metadata) gives in `normnet predict` the torch
   eval-mode output within 1e-5 relative; with a float64 tensor in it normnet refuses it naming
   the tensor and the dtype.
3. A checkpoint written by `normnet train` (a few steps) is read by safetensors.torch.load_file
   and safe_open (metadata), loads into the torch module with load_state_dict(strict=True), and
   gives `normnet predict`'s logits within 1e-5 relative.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop  # noqa: E402

IN_VENV = "NORMNET_TEST_VENV"
TOL = 1e-5
MEAN, STD = 0.3, 0.35


def echo(args, chk, case, path, load):
    """parity_runner echo of `path`; returns the response loaded by `load` and its metadata."""
    from safetensors import safe_open
    resp = os.path.join(args.workdir, f"{case}.echo.safetensors")
    if os.path.exists(resp):
        os.remove(resp)
    r = interop.run([args.runner, path, resp], expect_ok=False)
    if not chk.expect(r.returncode == 0, f"{case}: normnet could not read it: {r.stderr.strip()}"):
        return None, None
    with safe_open(resp, "np") as f:
        meta = f.metadata()
    return load(resp), meta


def written_by_package(args, chk):
    import numpy as np
    import torch
    from safetensors.numpy import load_file as np_load, save_file as np_save
    from safetensors.torch import load_file as pt_load, save_file as pt_save

    chk.begin("safetensors.torch.save_file -> normnet -> safetensors.torch.load_file")
    g = torch.Generator().manual_seed(0)
    tensors = {
        "conv1.weight": torch.randn(4, 3, 3, 3, generator=g),
        "f64": torch.randn(2, 5, generator=g, dtype=torch.float64),
        "f16": torch.randn(7, generator=g).half(),
        "bf16": torch.randn(3, 2, generator=g).bfloat16(),
        "bn.num_batches_tracked": torch.tensor(123456789012, dtype=torch.int64),
        "i32": torch.arange(-6, 6, dtype=torch.int32).reshape(3, 4),
        "i16": torch.tensor([-32768, 32767], dtype=torch.int16),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([[0, 255]], dtype=torch.uint8),
        "mask": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(2.5),
        "ünïcode.name": torch.ones(1),
    }
    meta = {"op": json.dumps({"mode": "echo"}), "note": 'ünïcode "quoted" \\ and\nnewline', "format": "pt"}
    path = os.path.join(args.workdir, "from-safetensors-torch.safetensors")
    pt_save(tensors, path, metadata=meta)
    got, got_meta = echo(args, chk, "torch", path, pt_load)
    if got is not None:
        chk.expect(got_meta == meta, f"metadata {got_meta}")
        chk.expect(sorted(got) == sorted(tensors), f"names {sorted(got)}")
        for k, want in tensors.items():
            have = got.get(k)
            ok = have is not None and have.dtype == want.dtype and have.shape == want.shape and torch.equal(have, want)
            chk.expect(ok, f"tensor '{k}': {None if have is None else (have.dtype, tuple(have.shape))}, "
                       f"expected {want.dtype} {tuple(want.shape)}, bit-identical")
        print(f"  {len(tensors)} tensors of {len({str(t.dtype) for t in tensors.values()})} dtypes round trip")

    chk.begin("safetensors.numpy.save_file -> normnet -> safetensors.numpy.load_file")
    rng = np.random.default_rng(1)
    arrays = {
        "u16": np.array([0, 65535], dtype=np.uint16),
        "u32": np.array([[2**32 - 1, 7]], dtype=np.uint32),
        "u64": np.array([2**64 - 1], dtype=np.uint64),
        "i64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
        "f32": rng.standard_normal((2, 3, 4)).astype(np.float32),
        "f64": rng.standard_normal(3),
        "f16": rng.standard_normal(5).astype(np.float16),
        "b": np.array([[True], [False]]),
    }
    path = os.path.join(args.workdir, "from-safetensors-numpy.safetensors")
    np_save(arrays, path, metadata={"op": json.dumps({"mode": "echo"})})
    got, _ = echo(args, chk, "numpy", path, np_load)
    if got is not None:
        for k, want in arrays.items():
            have = got.get(k)
            ok = have is not None and have.dtype == want.dtype and have.shape == want.shape and np.array_equal(have, want)
            chk.expect(ok, f"array '{k}': {None if have is None else (have.dtype, have.shape)}, expected "
                       f"{want.dtype} {want.shape}, bit-identical")
        print(f"  {len(arrays)} numpy arrays round trip")


def checkpoint_by_package(args, chk):
    import numpy as np
    import torch
    from safetensors.torch import save_file
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
    import normnet_torch
    from common import rel_err

    chk.begin("checkpoint written by safetensors.torch -> normnet predict")
    with open(os.path.join(args.models, "resnet20.json")) as f:
        spec = json.load(f)
    torch.manual_seed(0)
    net = interop.prepare(normnet_torch.torch_model(spec), spec["input"], MEAN, STD)
    meta = {"normnet.format": "1", "normnet.model": json.dumps(spec),
            "normnet.normalization": json.dumps({"mean": MEAN, "std": STD})}
    ckpt = os.path.join(args.workdir, "resnet20-by-safetensors.safetensors")
    save_file(net.state_dict(), ckpt, metadata=meta)
    imgs = interop.random_images(np.random.default_rng(2), 4, spec["input"])
    got = interop.predict(args, ckpt, imgs, "by-safetensors")
    want = interop.reference(net, interop.normalized(imgs, MEAN, STD))
    chk.close("normnet predict vs torch float64", got, want, TOL)
    print(f"  resnet20 saved by safetensors.torch: max rel err {rel_err(got, want):.2e}")

    bad = dict(net.state_dict())
    bad["fc.bias"] = bad["fc.bias"].double()
    path = os.path.join(args.workdir, "f64-tensor.safetensors")
    save_file(bad, path, metadata=meta)
    r = interop.run([args.normnet, "predict", path, os.path.join(args.workdir, "by-safetensors-png", "0.png")],
                    expect_ok=False)
    chk.expect(r.returncode == 1 and "'fc.bias'" in r.stderr and "F64" in r.stderr,
               f"F64 tensor: status {r.returncode}, stderr {r.stderr.strip()}")


def normnet_checkpoint_read_by_package(args, chk):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
    import normnet_torch
    from common import rel_err

    chk.begin("normnet train checkpoint -> safetensors.torch.load_file")
    data = os.path.join(args.workdir, "tiny-mnist")
    test_images = interop.tiny_mnist(data, 128, 16)
    ckpt = interop.train_checkpoint(args, "resnet20", data, os.path.join(args.workdir, "run-resnet20"), 96)
    state = load_file(ckpt)
    with safe_open(ckpt, "pt") as f:
        meta = f.metadata()
    spec = json.loads(meta["normnet.model"])
    norm = json.loads(meta["normnet.normalization"])
    chk.expect(meta.get("normnet.format") == "1", f"metadata {sorted(meta)}")
    net = normnet_torch.torch_model(spec)
    net.load_state_dict(state, strict=True)
    tracked = {int(v) for k, v in state.items() if k.endswith("num_batches_tracked")}
    chk.expect(tracked == {3}, f"num_batches_tracked {tracked}, expected 3 (96 images, batch 32)")
    chk.expect(all(v.dtype == (torch.int64 if k.endswith("num_batches_tracked") else torch.float32)
                   for k, v in state.items()), "dtypes")
    got = interop.predict(args, ckpt, test_images, "normnet-train")
    want = interop.reference(net, interop.normalized(test_images, norm["mean"], norm["std"]))
    chk.close("safetensors.torch.load_file + torch vs normnet predict", got, want, TOL)
    print(f"  resnet20 trained 3 steps by normnet: max rel err {rel_err(got, want):.2e}")


def main():
    from common import Checker, parse_args
    args = parse_args()
    if os.environ.get(IN_VENV) != "1":
        python, why = interop.venv_python(args.workdir)
        if python is None:
            interop.skip(why)
        os.environ[IN_VENV] = "1"
        sys.stdout.flush()
        os.execv(python, [python, os.path.abspath(__file__)] + sys.argv[1:])
    import safetensors
    print(f"safetensors {safetensors.__version__} (python {sys.executable})")
    chk = Checker("safetensors interop")
    written_by_package(args, chk)
    checkpoint_by_package(args, chk)
    normnet_checkpoint_read_by_package(args, chk)
    chk.finish()


if __name__ == "__main__":
    sys.exit(main())
