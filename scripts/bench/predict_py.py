"""Python side of bench:predict: what a user writes to classify a folder — PIL + torchvision's eval transforms, a
DataLoader with 2 workers, the model in PyTorch's best CPU configuration (channels_last, bf16 autocast only with
native BF16, inference_mode), softmax + top-5. Prints one JSON line: images/s over the whole folder and top-1."""
import json
import sys
import time

import torch
from PIL import Image
from torchvision import models, transforms

from peer import BEST_DTYPE, best_autocast

arch, files_list, threads, weights = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
with open(files_list) as f:
    rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
files = [r[0] for r in rows]
labels = [int(r[1]) for r in rows]

tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                         transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


class Files(torch.utils.data.Dataset):
    def __len__(self):
        return len(files)

    def __getitem__(self, i):
        with Image.open(files[i]) as im:
            return tf(im.convert("RGB"))


model = getattr(models, arch)(num_classes=1000)
if weights != "none":
    model.load_state_dict(torch.load(weights, map_location="cpu"))
model = model.eval().to(memory_format=torch.channels_last)


def run(limit=None):
    ds = Files() if limit is None else torch.utils.data.Subset(Files(), range(limit))
    dl = torch.utils.data.DataLoader(ds, batch_size=16, num_workers=2)
    top = []
    with torch.inference_mode(), best_autocast():
        for x in dl:
            p = model(x.to(memory_format=torch.channels_last)).float().softmax(1)
            top.append(p.topk(5, 1).indices)
    return torch.cat(top)


run(32)  # warm-up: worker start, first-call allocations
t0 = time.perf_counter()
top = run()
s = time.perf_counter() - t0
top1 = sum(int(t[0]) == l for t, l in zip(top.tolist(), labels)) / len(labels)
print(json.dumps({"arch": arch, "dtype": str(BEST_DTYPE).replace("torch.", ""), "img_per_s": len(files) / s, "top1": top1}))
