"""Python side of bench:train: the tutorial-style loop (torchvision DataLoader num_workers=2, Adam).

usage: train_py.py DATA_ROOT ARCH STRATEGY EPOCHS WEIGHTS_OR_- THREADS [best]
STRATEGY: full | feature-extract | feature-extract-fixed (eval transform) | partial-STAGE (ResNets: the stages before
STAGE frozen, their BatchNorm layers in eval mode, as the library's default freezeBatchNormStats)
Prints JSON: seconds per epoch (train + val), total seconds, final val accuracy.
"""
import json
import sys
import time

import torch
import torchvision
from torchvision import datasets, transforms

from peer import best_autocast

root, arch, strategy, epochs, weights, threads = sys.argv[1:7]
# best: PyTorch's best CPU configuration (channels_last, bf16 autocast where the CPU has native BF16, inference_mode
# for validation); run it with jemalloc preloaded (decay off).
best = len(sys.argv) > 7 and sys.argv[7] == "best"
epochs, threads = int(epochs), int(threads)
torch.set_num_threads(threads)
torch.manual_seed(0)
norm = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
train_tf = transforms.Compose([transforms.Resize([300, 300]), transforms.RandomRotation(45), transforms.CenterCrop(224),
                               transforms.RandomHorizontalFlip(0.5), transforms.RandomVerticalFlip(0.5),
                               transforms.ToTensor(), norm])
val_tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), norm])
if strategy == "feature-extract-fixed":
    train_tf = val_tf
train = torch.utils.data.DataLoader(datasets.ImageFolder(root + "/train", train_tf), batch_size=32, shuffle=True,
                                    num_workers=2, persistent_workers=True)
val = torch.utils.data.DataLoader(datasets.ImageFolder(root + "/val", val_tf), batch_size=32, num_workers=2,
                                  persistent_workers=True)
model = getattr(torchvision.models, arch)()
if weights != "-":
    model.load_state_dict(torch.load(weights))
if arch == "squeezenet1_1":
    model.classifier[1] = torch.nn.Conv2d(512, 2, 1)
    head = "classifier.1."
else:
    model.fc = torch.nn.Linear(model.fc.in_features, 2)
    head = "fc."
if strategy.startswith("feature-extract"):
    for n, p in model.named_parameters():
        p.requires_grad = n.startswith(head)
frozen_bn = []
if strategy.startswith("partial-"):
    stages = ["conv1", "layer1", "layer2", "layer3", "layer4", "fc"]
    first = stages.index(strategy[len("partial-"):])
    trainable = tuple(s + "." for s in stages[first:])
    for n, p in model.named_parameters():
        p.requires_grad = n.startswith(trainable)
    frozen_bn = [m for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d) and not n.startswith(trainable)]
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
if best:
    model = model.to(memory_format=torch.channels_last)
cl = (lambda t: t.contiguous(memory_format=torch.channels_last)) if best else (lambda t: t)
amp = best_autocast if best else (lambda: torch.autocast("cpu", enabled=False))
no_grad = torch.inference_mode if best else torch.no_grad
times, acc = [], 0.0
t_all = time.perf_counter()
for epoch in range(epochs):
    t0 = time.perf_counter()
    model.train()
    for m in frozen_bn:
        m.eval()
    for x, y in train:
        opt.zero_grad()
        with amp():
            out = model(cl(x))
        torch.nn.functional.cross_entropy(out.float(), y).backward()
        opt.step()
    model.eval()
    correct = n = 0
    with no_grad(), amp():
        for x, y in val:
            correct += (model(cl(x)).argmax(1) == y).sum().item()
            n += len(y)
    acc = correct / n
    times.append(time.perf_counter() - t0)
print(json.dumps({"epoch_seconds": times, "total": time.perf_counter() - t_all, "val_accuracy": acc}))
