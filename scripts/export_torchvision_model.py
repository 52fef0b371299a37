#!/usr/bin/python3
"""Exports a torchvision classification model as a TorchScript image encoder for lookalike.

The classifier is removed: the exported module returns the globally average-pooled features of
the last convolutional stage, shape [N, D] (D = 512 for resnet18, 2048 for resnet50, 1280 for
mobilenet_v2), not normalised (image_embedding() L2-normalises).

usage: export_torchvision_model.py --arch resnet18 --weights imagenet|random [--seed N]
                                   [--size 224] --out FILE.pt
  --weights imagenet  torchvision's ImageNet weights; they must already be in torch's cache
                      ($TORCH_HOME, default ~/.cache/torch/hub/checkpoints) -- nothing is
                      downloaded.
  --weights random    seeded random initialisation (for offline tests).
Prints one JSON line: the file's sha256 and the arguments of lookalike.register_model().
Needs Debian's python3-torch and python3-torchvision (torch 1.13, torchvision 0.14): TorchScript
written by torch 2.x may not load in Debian's LibTorch 1.13.
"""
import argparse
import hashlib
import json
import os
import sys

import torch
import torchvision

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class Features(torch.nn.Module):
    """backbone -> (ReLU where the network's head applies one) -> global average pool -> flatten."""

    def __init__(self, backbone, relu):
        super().__init__()
        self.backbone = backbone
        self.relu = relu

    def forward(self, x):
        x = self.backbone(x)
        if self.relu:
            x = torch.nn.functional.relu(x)
        return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)


def backbone_of(arch, net):
    """The convolutional trunk of a torchvision classifier, without pooling and classifier."""
    if arch.startswith(("resnet", "resnext", "wide_resnet", "regnet")):
        # Everything up to (not including) avgpool and fc.
        names = [n for n, _ in net.named_children()]
        keep = names[: names.index("avgpool")]
        return torch.nn.Sequential(*[getattr(net, n) for n in keep]), False
    if arch.startswith("mobilenet_v2"):
        return net.features, False  # features end in ReLU6; torchvision's head adds no activation
    if hasattr(net, "features"):  # densenet (relu in the head), vgg, mobilenet_v3, efficientnet...
        return net.features, arch.startswith("densenet")
    raise SystemExit(f"export_torchvision_model: do not know how to cut the classifier of {arch}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, help="torchvision model name, e.g. resnet18")
    ap.add_argument("--weights", choices=["imagenet", "random"], required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=224, help="input size to trace with and register")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    if a.arch not in torchvision.models.list_models(module=torchvision.models):
        raise SystemExit(f"export_torchvision_model: unknown torchvision classification model {a.arch}")
    torch.manual_seed(a.seed)
    if a.weights == "imagenet":
        weights = torchvision.models.get_model_weights(a.arch).DEFAULT
        try:
            # check_hash; progress off. torchvision downloads only if the file is not cached.
            from torch.hub import get_dir
            cached = os.path.join(get_dir(), "checkpoints", os.path.basename(weights.url))
            if not os.path.exists(cached):
                raise FileNotFoundError(cached)
            net = torchvision.models.get_model(a.arch, weights=weights)
        except Exception as e:  # noqa: BLE001 - report any failure to obtain the weights
            raise SystemExit(
                f"export_torchvision_model: ImageNet weights for {a.arch} are not available offline "
                f"({e}). Put {os.path.basename(weights.url)} into {os.path.join(get_dir(), 'checkpoints')} "
                f"or use --weights random.")
    else:
        net = torchvision.models.get_model(a.arch, weights=None)
    net.eval()
    backbone, relu = backbone_of(a.arch, net)
    model = Features(backbone, relu).eval()
    example = torch.rand(2, 3, a.size, a.size)
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
        out = traced(example)
    if out.dim() != 2:
        raise SystemExit(f"export_torchvision_model: output shape {tuple(out.shape)} is not [N, D]")
    traced.save(a.out)
    sha = hashlib.sha256(open(a.out, "rb").read()).hexdigest()
    print(json.dumps({"file": os.path.abspath(a.out), "sha256": sha, "arch": a.arch,
                      "weights": a.weights, "seed": a.seed if a.weights == "random" else None,
                      "dims": int(out.shape[1]), "input_size": a.size,
                      "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                      "register": f"SELECT lookalike.register_model('{a.arch}', "
                                  f"'{os.path.abspath(a.out)}', {a.size}, "
                                  f"'{{{','.join(map(str, IMAGENET_MEAN))}}}', "
                                  f"'{{{','.join(map(str, IMAGENET_STD))}}}');"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
