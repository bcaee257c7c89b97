"""Python/torchvision side of bench:compute. Prints one JSON line per case.
usage: compute_py.py ARCH BATCH ITERS THREADS [best]
  default: fp32 NCHW and fp32 channels_last (the loop people write).
  best: PyTorch's best CPU configuration -- channels_last, bf16 autocast where the CPU has native BF16 (else fp32),
  inference_mode (run it with jemalloc preloaded, decay off), eager and torch.compile, plus the convolution peak of
  this CPU in that dtype ("peak" line, GFLOP/s)."""
import json
import sys
import time

import torch
import torchvision

from peer import BEST_DTYPE, best_autocast

arch, batch, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
best = len(sys.argv) > 5 and sys.argv[5] == "best"
torch.set_num_threads(threads)
torch.manual_seed(0)
x = torch.randn(batch, 3, 224, 224)
y = torch.randint(0, 1000, (batch,))


def timeit(fn):
    fn()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return batch * iters / (time.perf_counter() - t0)


def conv_peak():
    """GFLOP/s of a large 3x3 convolution (256 channels, 56x56, batch 32, channels_last) in the best dtype: the
    ceiling figure."""
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    xi = torch.randn(32, 256, 56, 56).contiguous(memory_format=torch.channels_last)
    flops = 2 * 32 * 256 * 256 * 9 * 56 * 56
    with torch.inference_mode(), best_autocast():
        conv(xi)
        t0 = time.perf_counter()
        for _ in range(5):
            conv(xi)
        return flops * 5 / (time.perf_counter() - t0) / 1e9


if best:
    m = getattr(torchvision.models, arch)().to(memory_format=torch.channels_last)
    xi = x.contiguous(memory_format=torch.channels_last)
    m.eval()
    with torch.inference_mode(), best_autocast():
        inf = timeit(lambda: m(xi))
    dtype = str(BEST_DTYPE).replace("torch.", "")
    print(json.dumps({"arch": arch, "layout": "best", "torch": torch.__version__, "dtype": dtype, "infer": inf}), flush=True)
    print(json.dumps({"peak": conv_peak(), "dtype": dtype}), flush=True)
    if "--no-compile" not in sys.argv:
        compiled = torch.compile(m)
        with torch.inference_mode(), best_autocast():
            compiled(xi)  # compiles
            inf = timeit(lambda: compiled(xi))
        print(json.dumps({"arch": arch, "layout": "compile", "dtype": dtype, "infer": inf}), flush=True)
    sys.exit(0)

for layout in ("nchw", "channels_last"):
    m = getattr(torchvision.models, arch)()
    xi = x
    if layout == "channels_last":
        m = m.to(memory_format=torch.channels_last)
        xi = x.contiguous(memory_format=torch.channels_last)
    m.eval()
    with torch.inference_mode():
        inf = timeit(lambda: m(xi))
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(xi), y).backward()
        opt.step()

    print(json.dumps({"arch": arch, "layout": layout, "infer": inf, "train": timeit(step)}), flush=True)
