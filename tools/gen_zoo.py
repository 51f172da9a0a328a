#!/usr/bin/env python3
"""Writes the deep networks of the model zoo (models/*.json) so they stay consistent.

    python3 tools/gen_zoo.py            # rewrites models/{resnet20,resnet18,vgg11-bn,...}.json
    python3 tools/gen_zoo.py --check    # exits 1 if a file differs from what would be written

Every network comes twice: NAME for 1x28x28 (Fashion-MNIST) and NAME-c32 for 3x32x32
(CIFAR-10). Layer names follow the PyTorch originals where the format allows (no dots in a name,
so torchvision's layer1.0 is layer1_0 here); `notes` say every adaptation.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "models")


# ---------------------------------------------------------------- building blocks

def conv(name, cin, cout, k, stride=1, padding=None, bias=False):
    d = {"type": "Conv2d", "name": name, "in_channels": cin, "out_channels": cout, "kernel_size": k}
    if stride != 1:
        d["stride"] = stride
    d["padding"] = k // 2 if padding is None else padding
    if not bias:
        d["bias"] = False
    return d


def bn(name, c):
    return {"type": "BatchNorm2d", "name": name, "num_features": c}


def relu(name):
    return {"type": "ReLU", "name": name}


def basic_block(name, cin, cout, stride):
    """torchvision's BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU. The shortcut is
    a 1x1 convolution + BN where the shape changes (option B of He et al.)."""
    body = [conv("conv1", cin, cout, 3, stride), bn("bn1", cout), relu("relu"),
            conv("conv2", cout, cout, 3), bn("bn2", cout)]
    short = None
    if stride != 1 or cin != cout:
        short = [conv("0", cin, cout, 1, stride, padding=0), bn("1", cout)]
    return {"type": "Residual", "name": name, "body": body, "shortcut": short,
            "shortcut_name": "shortcut", "activation": "ReLU"}


def head(cin, classes=10):
    return [{"type": "GlobalAvgPool", "name": "avgpool"},
            {"type": "Linear", "name": "fc", "in_features": cin, "out_features": classes}]


def variants(c32):
    cin, size = (3, 32) if c32 else (1, 28)
    return cin, size


def after_conv(size, k, stride, padding):
    return (size + 2 * padding - k) // stride + 1


# ---------------------------------------------------------------- the networks

def resnet(name, blocks, widths, c32, description, notes, adapted_from):
    cin, size = variants(c32)
    layers = [conv("conv1", cin, widths[0], 3), bn("bn1", widths[0]), relu("relu")]
    c = widths[0]
    for s, (n, w) in enumerate(zip(blocks, widths)):
        for b in range(n):
            stride = 2 if s > 0 and b == 0 else 1
            layers.append(basic_block(f"layer{s + 1}_{b}", c, w, stride))
            c = w
            if stride == 2:
                size = after_conv(size, 3, 2, 1)
    layers += head(c)
    return model(name, c32, description, notes + [f"The last stage's feature maps are {size}x{size}."],
                 adapted_from, layers)


def resnet20(c32):
    return resnet(
        "resnet20", [3, 3, 3], [16, 32, 64], c32,
        "ResNet-20 for CIFAR (He et al. 2016, section 4.2): a 3x3 convolution, three stages of three "
        "BasicBlocks with 16, 32 and 64 channels (the first block of stages 2 and 3 halves the size), "
        "global average pooling, a linear classifier. 6n+2 layers with n = 3.",
        ["Shortcuts where the shape changes are 1x1 convolution + BatchNorm (the paper's option B, "
         "torchvision's downsample) instead of the CIFAR paper's option A (zero-padded identity), so the "
         "network is built from standard layers; it adds 2*(16*32 + 32*64) + BN weights.",
         "Convolutions have no bias (each is followed by BatchNorm), as in torchvision.",
         "Blocks are named layer1_0 .. layer3_2 (torchvision's layer1.0: names cannot hold dots).",
         "28x28 input: the sizes are 28, 14, 7 instead of 32, 16, 8; nothing else changes." if not c32 else
         "3x32x32 input as in the paper: sizes 32, 16, 8."],
        "He, Zhang, Ren, Sun: Deep Residual Learning for Image Recognition (CVPR 2016), CIFAR-10 ResNet-20")


def resnet18(c32):
    return resnet(
        "resnet18", [2, 2, 2, 2], [64, 128, 256, 512], c32,
        "ResNet-18 (torchvision resnet18) adapted to small images: a 3x3 stem, four stages of two "
        "BasicBlocks with 64, 128, 256 and 512 channels, global average pooling, a linear classifier.",
        ["The ImageNet stem (7x7 convolution with stride 2, then 3x3 max pooling with stride 2) would shrink "
         "a small image 4x before the first block; it is a 3x3 convolution with stride 1 and no max pooling "
         "instead, as in the usual CIFAR ResNet-18.",
         "Shortcuts where the shape changes are torchvision's downsample: 1x1 convolution with stride 2 + "
         "BatchNorm, here named 'shortcut' (torchvision: 'downsample').",
         "Blocks are named layer1_0 .. layer4_1 (torchvision's layer1.0: names cannot hold dots).",
         "The classifier is Linear(512, 10) instead of Linear(512, 1000).",
         "28x28 input: the stage sizes are 28, 14, 7, 4 (3x3 stride 2 padding 1 on 7 gives 4)." if not c32 else
         "3x32x32 input: the stage sizes are 32, 16, 8, 4."],
        "He, Zhang, Ren, Sun: Deep Residual Learning for Image Recognition (CVPR 2016); torchvision.models.resnet18")


def vgg11_bn(c32):
    cin, size = variants(c32)
    cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    if not c32:
        cfg = cfg[:-1]  # 28 -> 14 -> 7 -> 3 -> 1 after four poolings; a fifth has nothing left to pool
    layers, c, i, p = [], cin, 0, 0
    for v in cfg:
        if v == "M":
            p += 1
            layers.append({"type": "MaxPool2d", "name": f"pool{p}", "kernel_size": 2})
            size //= 2
        else:
            i += 1
            layers += [conv(f"conv{i}", c, v, 3, bias=True), bn(f"bn{i}", v), relu(f"relu{i}")]
            c = v
    layers += [{"type": "Flatten", "name": "flatten"},
               {"type": "Linear", "name": "fc1", "in_features": c * size * size, "out_features": 512},
               relu("relu_fc1"), {"type": "Dropout", "name": "drop1", "p": 0.5},
               {"type": "Linear", "name": "fc2", "in_features": 512, "out_features": 512},
               relu("relu_fc2"), {"type": "Dropout", "name": "drop2", "p": 0.5},
               {"type": "Linear", "name": "fc3", "in_features": 512, "out_features": 10}]
    return model(
        "vgg11-bn", c32,
        "VGG-11 with BatchNorm (configuration A of Simonyan & Zisserman, torchvision vgg11_bn): eight 3x3 "
        "convolutions (64, 128, 256, 256, 512, 512, 512, 512 channels), each followed by BatchNorm and ReLU, "
        "max pooling after convolutions 1, 2, 4, 6 and 8, then a three-layer classifier.",
        ["The classifier is the CIFAR one (512-512-10 with dropout 0.5) instead of ImageNet's 4096-4096-1000 "
         "on 7x7 features: the feature map is 1x1 here, so there is no adaptive average pooling.",
         "Convolutions keep their bias (torchvision's vgg11_bn does, although BatchNorm follows).",
         "28x28 input: only four max poolings (28 -> 14 -> 7 -> 3 -> 1); the fifth, after conv8, is dropped "
         "since a 1x1 map cannot be pooled." if not c32 else
         "3x32x32 input: five poolings take 32 to 1x1, as in the usual CIFAR VGG."],
        "Simonyan, Zisserman: Very Deep Convolutional Networks (ICLR 2015), configuration A; "
        "Ioffe, Szegedy: Batch Normalization (2015) for the BatchNorm layers; torchvision.models.vgg11_bn",
        layers)


def densenet_bc(c32, depth=40, k=12):
    cin, size = variants(c32)
    n = (depth - 4) // 6  # dense layers per block (each has two convolutions)
    c = 2 * k
    layers = [conv("conv0", cin, c, 3)]
    for blk in range(3):
        for l in range(n):
            new = [bn("norm1", c), relu("relu1"), conv("conv1", c, 4 * k, 1, padding=0),
                   bn("norm2", 4 * k), relu("relu2"), conv("conv2", 4 * k, k, 3)]
            layers.append({"type": "Concat", "name": f"block{blk + 1}_layer{l + 1}",
                           "branches": [{"name": "input", "layers": []}, {"name": "new", "layers": new}]})
            c += k
        if blk < 2:
            t = c // 2
            layers += [bn(f"trans{blk + 1}_norm", c), relu(f"trans{blk + 1}_relu"),
                       conv(f"trans{blk + 1}_conv", c, t, 1, padding=0),
                       {"type": "AvgPool2d", "name": f"trans{blk + 1}_pool", "kernel_size": 2}]
            c = t
            size //= 2
    layers += [bn("norm_final", c), relu("relu_final")] + head(c)
    return model(
        f"densenet-bc{depth}", c32,
        f"DenseNet-BC (L={depth}, k={k}) for CIFAR (Huang et al. 2017): a 3x3 convolution to 2k = {2 * k} "
        f"channels, three dense blocks of {n} bottleneck layers (BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k), "
        "output concatenated to the input), transitions with compression 0.5 (BN-ReLU-Conv1x1-AvgPool2), "
        "BN-ReLU, global average pooling, a linear classifier.",
        ["Each dense layer is a Concat of the identity ('input') and the bottleneck ('new'), so state_dict "
         "names are block1_layer1.new.norm1.weight (torchvision: denseblock1.denselayer1.norm1.weight).",
         f"Depth {depth} instead of the paper's 100 or 250 to keep the network small ({n} layers per block).",
         "28x28 input: the block sizes are 28, 14, 7 instead of 32, 16, 8." if not c32 else
         "3x32x32 input as in the paper: block sizes 32, 16, 8."],
        "Huang, Liu, van der Maaten, Weinberger: Densely Connected Convolutional Networks (CVPR 2017), DenseNet-BC",
        layers)


def inception_small(c32):
    cin, size = variants(c32)

    def cbr(prefix, ci, co, k, stride=1, padding=None):
        return [conv(f"{prefix}conv", ci, co, k, stride, padding), bn(f"{prefix}bn", co), relu(f"{prefix}relu")]

    def inception(name, ci, c1, c3):
        return {"type": "Concat", "name": name, "branches": [
            {"name": "b1x1", "layers": cbr("", ci, c1, 1, padding=0)},
            {"name": "b3x3", "layers": cbr("", ci, c3, 3)}]}, c1 + c3

    def downsample(name, ci, c3):
        return {"type": "Concat", "name": name, "branches": [
            {"name": "b3x3", "layers": cbr("", ci, c3, 3, stride=2, padding=0)},
            {"name": "pool", "layers": [{"type": "MaxPool2d", "name": "pool", "kernel_size": 3, "stride": 2}]}]}, ci + c3

    layers = cbr("stem_", cin, 96, 3)
    c = 96
    plan = [("i", 32, 32), ("i", 32, 48), ("d", 80), ("i", 112, 48), ("i", 96, 64), ("i", 80, 80),
            ("i", 48, 96), ("d", 96), ("i", 176, 160), ("i", 176, 160)]
    ni = nd = 0
    sizes = [size]
    for p in plan:
        if p[0] == "i":
            ni += 1
            blk, c = inception(f"inception{ni}", c, p[1], p[2])
        else:
            nd += 1
            blk, c = downsample(f"down{nd}", c, p[1])
            size = after_conv(size, 3, 2, 0)
            sizes.append(size)
        layers.append(blk)
    layers += head(c)
    return model(
        "inception-small", c32,
        "The small Inception with BatchNorm of Zhang et al. (2017) for CIFAR-10: a 3x3 conv module (96), "
        "two Inception modules, a downsample module, four Inception modules, a downsample module, two "
        "Inception modules, global average pooling, a linear classifier. A conv module is "
        "Conv-BatchNorm-ReLU; an Inception module concatenates a 1x1 and a 3x3 conv module; a downsample "
        "module concatenates a 3x3 stride-2 conv module and a 3x3 stride-2 max pooling.",
        ["Branches are Concat layers; state_dict names are inception1.b1x1.conv.weight.",
         "Convolutions have no bias (each is followed by BatchNorm).",
         f"Feature map sizes {' -> '.join(map(str, sizes))} ("
         + ("the paper already used 28x28 inputs (center crops of CIFAR-10 images); only the input channels "
            "change, 1 instead of 3" if not c32 else
            "the paper used 28x28 center crops; here the whole 32x32 image, so the sizes are 32, 15, 7")
         + "; the downsample modules use no padding).",
         "BN-Inception of the BatchNorm paper (Ioffe & Szegedy 2015) is an ImageNet network of 4-branch "
         "modules; this CIFAR-sized relative keeps its pattern: parallel branches concatenated on channels, "
         "BatchNorm after every convolution."],
        "Zhang, Bengio, Hardt, Recht, Vinyals: Understanding deep learning requires rethinking "
        "generalization (ICLR 2017), appendix, small Inception; Szegedy et al. 2015; Ioffe & Szegedy 2015",
        layers)


# ---------------------------------------------------------------- files

def model(name, c32, description, notes, adapted_from, layers):
    cin, size = variants(c32)
    return {"name": name + ("-c32" if c32 else ""), "description": description, "notes": notes,
            "adapted_from": adapted_from, "input": [cin, size, size], "classes": 10, "layers": layers}


def dump_layers(layers, indent):
    pad = " " * indent
    out = []
    for l in layers:
        nested = {k: v for k, v in l.items() if k in ("body", "shortcut", "branches")}
        if not nested:
            out.append(pad + json.dumps(l))
            continue
        head_ = {k: v for k, v in l.items() if k not in nested}
        s = pad + json.dumps(head_)[:-1]
        parts = []
        for k, v in nested.items():
            if v is None:
                parts.append(f'"{k}": null')
            elif k == "branches":
                bs = []
                for b in v:
                    bh = json.dumps({"name": b["name"]})[:-1]
                    if b["layers"]:
                        bs.append(pad + "    " + bh + ', "layers": [\n' + dump_layers(b["layers"], indent + 6)
                                  + "\n" + pad + "    ]}")
                    else:
                        bs.append(pad + "    " + bh + ', "layers": []}')
                parts.append(f'"{k}": [\n' + ",\n".join(bs) + "\n" + pad + "  ]")
            else:
                parts.append(f'"{k}": [\n' + dump_layers(v, indent + 4) + "\n" + pad + "  ]")
        out.append(s + ", " + ", ".join(parts) + "}")
    return ",\n".join(out)


def dump(m):
    lines = ["{"]
    for k in ("name", "description", "notes", "adapted_from", "input", "classes"):
        lines.append(f'  "{k}": {json.dumps(m[k])},')
    lines.append('  "layers": [')
    lines.append(dump_layers(m["layers"], 4))
    lines.append("  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == m
    return text


NETWORKS = [resnet20, resnet18, vgg11_bn, densenet_bc, inception_small]


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for make in NETWORKS:
        for c32 in (False, True):
            m = make(c32)
            path = os.path.join(MODELS, m["name"] + ".json")
            text = dump(m)
            old = open(path).read() if os.path.exists(path) else None
            if old != text:
                stale.append(path)
                if not check:
                    with open(path, "w") as f:
                        f.write(text)
    if check and stale:
        print("gen_zoo: out of date (run python3 tools/gen_zoo.py):", *stale, sep="\n  ")
        sys.exit(1)
    print(("gen_zoo: wrote " if stale and not check else "gen_zoo: up to date ") + str(len(stale) or ""))


if __name__ == "__main__":
    main()
