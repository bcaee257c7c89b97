"""Python/torchvision side of bench:compute. Prints one JSON line per case."""
import json
import sys
import time

import torch
import torchvision

arch, batch, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
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
