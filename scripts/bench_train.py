#!/usr/bin/python3
"""PyTorch side of scripts/bench_train.sh: training throughput of a CIFAR-style
ResNet (3 stages, base width 16, 1x1-conv projection shortcuts, as rmprune's
nn.Build("resnet20") / nn.Build("resnet56"); --depth) on random inputs
(--shape, default 1x28x28), batch 128, SGD with momentum 0.9 and weight decay
5e-4. A step is forward + backward + update with
the batch prepared ahead. Prints one JSON line:
{"images_per_s": ..., "ms_per_step_p50": ..., "torch": ..., "threads": ...}.
images_per_s = batch / median step time after 3 warm-up steps.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(y + s)


class ResNet(nn.Module):
    def __init__(self, cin=1, classes=10, n=3):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, c = [], 16
        for i, w in enumerate([16, 32, 64]):
            for j in range(n):
                s = 2 if i > 0 and j == 0 else 1
                layers.append(Block(c, w, s))
                c = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--shape", default="1x28x28")
    ap.add_argument("--depth", type=int, default=20, help="6n+2: 20, 32, 44, 56, 110")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c, h, w = (int(v) for v in args.shape.split("x"))
    if (args.depth - 2) % 6:
        ap.error("--depth must be 6n+2")
    model = ResNet(cin=c, n=(args.depth - 2) // 6)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(args.batch, c, h, w)
    y = torch.randint(0, 10, (args.batch,))
    times = []
    for i in range(3 + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        t = time.perf_counter() - t0
        if i >= 3:
            times.append(t)
    med = statistics.median(times)
    print(json.dumps({"images_per_s": args.batch / med, "ms_per_step_p50": med * 1e3,
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "batch": args.batch, "steps": args.steps, "depth": args.depth, "shape": args.shape}))


if __name__ == "__main__":
    main()
