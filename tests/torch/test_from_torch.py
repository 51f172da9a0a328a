"""PyTorch -> normnet: tools/from_torch.py (and tools/normnet_torch.py, which it uses).

1. Every zoo model (models/*.json) built in torch by normnet_torch.torch_model, given
   non-trivial normalization parameters and running statistics (interop.prepare: random
   affine, 3 training-mode forwards), written by from_torch.save with the description it
   generates from the module (not the zoo file). `normnet predict` on random PNG images must
   equal torch's eval-mode output (float64 forward on the same normalized float32 input) within
   1e-5 relative (max|diff| / max|want|); the checkpoint read back by normnet_torch.load
   (load_state_dict strict) must give the same output.
2. Hand-made nn.Sequentials of every supported layer kind (nested Sequential, padding='same',
   groups, GroupNorm, InstanceNorm with and without running statistics, LayerNorm, ELU,
   LeakyReLU, ceil_mode max pooling, padded AvgPool2d without count_include_pad, BatchNorm with
   cumulative momentum, AdaptiveAvgPool2d(1) with and without Flatten after it, Flatten(1, 2),
   Conv1d/BatchNorm1d/MaxPool1d, Dropout): the same check, and the flattened names.
3. The command line: SOURCE a torch.save'd module, a FILE.py:FUNCTION factory, and a zoo name
   with --state-dict; --model-json.
4. Refusals, exit status 1 with the module's path and type in the message: an unsupported
   layer inside a nested Sequential, a custom module, Dropout2d, an output that is not
   (N, classes), a state_dict file that does not fit.
"""

import glob
import json
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Checker, parse_args, rel_err  # noqa: E402
import interop  # noqa: E402

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")
sys.path.insert(0, TOOLS)
import from_torch  # noqa: E402
import normnet_torch  # noqa: E402

TOL = 1e-5
MEAN, STD = 0.3, 0.35
N_IMAGES = 4


def hand_made_2d():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding="same", bias=False), nn.GroupNorm(2, 8),
                      nn.ELU(alpha=0.7)),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),            # 28 -> 15
        nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=2),              # -> 8
        nn.InstanceNorm2d(12, affine=True, track_running_stats=True), nn.LeakyReLU(0.2),
        nn.AvgPool2d(2, padding=1, count_include_pad=False),             # -> 5
        nn.Conv2d(12, 16, 1), nn.BatchNorm2d(16, momentum=None), nn.ReLU(),
        nn.InstanceNorm2d(16), nn.Dropout(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 24, 1), nn.Flatten(),   # pooled dims kept
        nn.Linear(24, 32), nn.LayerNorm(32), nn.BatchNorm1d(32, eps=1e-3), nn.ReLU(),
        nn.Linear(32, 10))


def hand_made_1d():
    return nn.Sequential(
        nn.Flatten(1, 2),                                                # (N, 28, 28): rows as channels
        nn.Conv1d(28, 16, 5, padding=2), nn.BatchNorm1d(16, momentum=0.3), nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Conv1d(16, 16, 3, padding=2, dilation=2, bias=False), nn.InstanceNorm1d(16, affine=True),
        nn.ELU(), nn.GroupNorm(4, 16), nn.LayerNorm([16, 14], eps=1e-4),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 7))


def check_model(args, chk, case, net, input_shape, rng, spec=None):
    """from_torch.save -> normnet predict == torch (float64) within TOL; returns the spec."""
    ckpt = os.path.join(args.workdir, f"{case}.safetensors")
    spec = from_torch.save(net, input_shape, ckpt, mean=MEAN, std=STD, name=case, spec=spec)
    imgs = interop.random_images(rng, N_IMAGES, input_shape)
    x = interop.normalized(imgs, MEAN, STD)
    got = interop.predict(args, ckpt, imgs, case)
    want = interop.reference(net, x)
    with torch.no_grad():
        want32 = net(torch.from_numpy(x)).numpy()
    chk.close("normnet predict vs torch float64", got, want, TOL)
    back, _, norm = normnet_torch.load(ckpt)
    chk.expect(norm == {"mean": MEAN, "std": STD}, f"normalization read back as {norm}")
    chk.close("normnet_torch.load(checkpoint) vs torch float64", interop.reference(back, x), want, 1e-12)
    print(f"  {case}: max rel err {rel_err(got, want):.2e} vs float64 "
          f"(torch float32: {rel_err(want32, want):.2e}), logits {got.shape}")
    return spec


def zoo(args, chk, rng):
    for path in sorted(glob.glob(os.path.join(args.models, "*.json"))):
        with open(path) as f:
            zspec = json.load(f)
        case = zspec["name"]
        chk.begin(case)
        torch.manual_seed(0)
        net = interop.prepare(normnet_torch.torch_model(zspec), zspec["input"], MEAN, STD)
        tracked = {int(v) for k, v in net.state_dict().items() if k.endswith("num_batches_tracked")}
        chk.expect(tracked in (set(), {3}), f"num_batches_tracked {tracked}, expected 3")
        spec = check_model(args, chk, case, net, zspec["input"], rng)
        chk.expect(spec["classes"] == zspec.get("classes", 10) and spec["input"] == zspec["input"],
                   f"generated input {spec['input']} / classes {spec['classes']}")


def hand_made(args, chk, rng):
    chk.begin("hand-made 2d Sequential")
    torch.manual_seed(1)
    net = interop.prepare(hand_made_2d(), (1, 28, 28), MEAN, STD)
    spec = check_model(args, chk, "handmade2d", net, (1, 28, 28), rng)
    names = [layer["name"] for layer in spec["layers"]]
    chk.expect(names[3:6] == ["3_0", "3_1", "3_2"], f"nested Sequential names {names[3:6]}")
    chk.expect("14_keepdim" in names and spec["layers"][names.index("14_keepdim")]["shape"] == [16, 1, 1],
               f"AdaptiveAvgPool2d(1) keeps (N, 16, 1, 1): {names}")
    chk.expect(any("3.0.weight -> 3_0.weight" in n for n in spec.get("notes", [])),
               f"renames not noted: {spec.get('notes')}")

    chk.begin("hand-made 1d Sequential")
    torch.manual_seed(2)
    net = interop.prepare(hand_made_1d(), (1, 28, 28), MEAN, STD)
    spec = check_model(args, chk, "handmade1d", net, (1, 28, 28), rng)
    types = [layer["type"] for layer in spec["layers"]]
    chk.expect(types[0] == "Reshape" and spec["layers"][0]["shape"] == [28, 28] and types[-3] == "GlobalAvgPool"
               and "Reshape" not in types[1:], f"layer types {types}")


def cli(args, chk, rng):
    chk.begin("command line")
    tool = [sys.executable, os.path.join(TOOLS, "from_torch.py")]
    imgs = interop.random_images(rng, N_IMAGES, (1, 28, 28))
    x = interop.normalized(imgs, MEAN, STD)

    # A torch.save'd whole module.
    torch.manual_seed(3)
    net = interop.prepare(hand_made_2d(), (1, 28, 28), MEAN, STD)
    pt = os.path.join(args.workdir, "cli-module.pt")
    torch.save(net, pt)
    ckpt = os.path.join(args.workdir, "cli-module.safetensors")
    mj = os.path.join(args.workdir, "cli-module.json")
    r = interop.run(tool + [pt, "--input", "1,28,28", "-o", ckpt, "--mean", str(MEAN), "--std", str(STD),
                            "--model-json", mj])
    chk.expect("3.0.weight -> 3_0.weight" in r.stdout, f"renames not printed: {r.stdout}")
    with open(mj) as f:
        chk.expect(json.load(f)["layers"][3]["name"] == "3_0", "--model-json content")
    chk.close("torch.save'd module: predict", interop.predict(args, ckpt, imgs, "cli-module"),
              interop.reference(net, x), TOL)

    # A FILE.py:FUNCTION factory (a fresh module: default init, running stats 0 and 1).
    factory = os.path.join(args.workdir, "factory.py")
    with open(factory, "w") as f:
        f.write("import torch\nfrom torch import nn\n\n\ndef make():\n    torch.manual_seed(5)\n"
                "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),\n"
                "                         nn.Linear(4 * 26 * 26, 3))\n")
    ckpt = os.path.join(args.workdir, "cli-factory.safetensors")
    interop.run(tool + [f"{factory}:make", "--input", "1x28x28", "-o", ckpt, "--mean", str(MEAN),
                        "--std", str(STD)])
    sys.path.insert(0, args.workdir)
    import factory as factory_module
    chk.close("FILE.py:FUNCTION: predict", interop.predict(args, ckpt, imgs, "cli-factory"),
              interop.reference(factory_module.make().eval(), x), TOL)

    # A zoo name with a state_dict trained elsewhere.
    with open(os.path.join(args.models, "seed001.json")) as f:
        zspec = json.load(f)
    torch.manual_seed(4)
    net = interop.prepare(normnet_torch.torch_model(zspec), (1, 28, 28), MEAN, STD)
    sd = os.path.join(args.workdir, "cli-seed001-state.pt")
    torch.save(net.state_dict(), sd)
    ckpt = os.path.join(args.workdir, "cli-zoo.safetensors")
    interop.run(tool + ["seed001", "--state-dict", sd, "-o", ckpt, "--mean", str(MEAN), "--std", str(STD)])
    _, spec, _ = normnet_torch.load(ckpt)
    chk.expect(spec == zspec, "the zoo description is stored as it is")
    chk.close("zoo name + --state-dict: predict", interop.predict(args, ckpt, imgs, "cli-zoo"),
              interop.reference(net, x), TOL)


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.conv(x) * 2


def refusals(args, chk):
    chk.begin("refusals")

    def refused(module, input_shape, *parts):
        try:
            normnet_torch.describe(module, input_shape)
        except normnet_torch.UnsupportedModule as e:
            msg = str(e)
            chk.expect(all(p in msg for p in parts), f"message lacks {parts}: {msg}")
            return msg
        chk.fail(f"accepted, expected an error with {parts}")

    refused(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.Sigmoid()), nn.Flatten(),
                          nn.Linear(2 * 26 * 26, 10)), (1, 28, 28), "module '1.1'", "(Sigmoid)", "not supported")
    refused(nn.Sequential(Custom(), nn.Flatten(), nn.Linear(2 * 26 * 26, 10)), (1, 28, 28), "module '0'",
            "Custom)")
    refused(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout2d(), nn.Flatten(), nn.Linear(2 * 26 * 26, 10)),
            (1, 28, 28), "module '1' (Dropout2d)", "channels")
    refused(nn.Sequential(nn.Conv2d(1, 2, 3)), (1, 28, 28), "(N, classes)")
    refused(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten(), nn.Linear(2 * 28 * 28, 10)),
            (1, 28, 28), "module '0' (Conv2d)", "padding_mode")

    # The command line: status 1 and the message on stderr; no output file.
    tool = [sys.executable, os.path.join(TOOLS, "from_torch.py")]
    pt = os.path.join(args.workdir, "bad-module.pt")
    torch.save(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 26 * 26, 10)), pt)
    out = os.path.join(args.workdir, "bad.safetensors")
    if os.path.exists(out):
        os.remove(out)
    r = interop.run(tool + [pt, "--input", "1,28,28", "-o", out], expect_ok=False)
    chk.expect(r.returncode == 1 and "from_torch: error: module '1' (Tanh)" in r.stderr and not os.path.exists(out),
               f"status {r.returncode}, stderr {r.stderr.strip()}")
    sd = os.path.join(args.workdir, "bad-state.pt")
    torch.save({"conv1.weight": torch.zeros(1)}, sd)
    r = interop.run(tool + ["seed001", "--state-dict", sd, "-o", out], expect_ok=False)
    chk.expect(r.returncode == 1 and "Missing key" in r.stderr, f"status {r.returncode}, stderr {r.stderr.strip()}")
    r = interop.run(tool + [pt, "-o", out], expect_ok=False)
    chk.expect(r.returncode == 1 and "--input is required" in r.stderr, f"stderr {r.stderr.strip()}")


def main():
    args = parse_args()
    chk = Checker("from_torch")
    rng = np.random.default_rng(0)
    zoo(args, chk, rng)
    hand_made(args, chk, rng)
    cli(args, chk, rng)
    refusals(args, chk)
    chk.finish()


if __name__ == "__main__":
    sys.exit(main())
