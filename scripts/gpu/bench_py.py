"""Python side of the GPU check's benchmark: resnet50, bf16 autocast, channels_last, inference_mode, cuDNN
autotuning; each step starts from a host (CPU) batch as ours does. Prints one JSON line.
usage: bench_py.py DEVICE BATCH ITERS"""
import json
import sys
import time

import torch
import torchvision

device, batch, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.backends.cudnn.benchmark = True
torch.manual_seed(0)
x = torch.randn(batch, 3, 224, 224)
y = torch.randint(0, 1000, (batch,))
m = torchvision.models.resnet50().to(device, memory_format=torch.channels_last)
kind = "cuda" if device.startswith("cuda") else "cpu"


def sync():
    if kind == "cuda":
        torch.cuda.synchronize()


def timeit(fn):
    for _ in range(3):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return batch * iters / (time.perf_counter() - t0)


def infer():
    with torch.inference_mode(), torch.autocast(kind, dtype=torch.bfloat16):
        return m(x.to(device).contiguous(memory_format=torch.channels_last)).float().cpu()


opt = torch.optim.SGD(m.parameters(), lr=0.01)


def step():
    opt.zero_grad()
    with torch.autocast(kind, dtype=torch.bfloat16):
        out = m(x.to(device).contiguous(memory_format=torch.channels_last))
    torch.nn.functional.cross_entropy(out.float(), y.to(device)).backward()
    opt.step()
    return out


m.eval()
inf = timeit(infer)
m.train()
tr = timeit(step)
print(json.dumps({"torch": torch.__version__, "infer": inf, "train": tr}))
