"""Python side of bench:data: torchvision ImageFolder + DataLoader with the document's training transforms."""
import json
import sys
import time

import torch
from torchvision import datasets, transforms

root, workers, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
tf = transforms.Compose([
    transforms.Resize([300, 300]), transforms.RandomRotation(45), transforms.CenterCrop(224),
    transforms.RandomHorizontalFlip(0.5), transforms.RandomVerticalFlip(0.5), transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
ds = datasets.ImageFolder(root, tf)
dl = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
best = 0
for _ in range(epochs):
    t0 = time.perf_counter()
    n = sum(x.shape[0] for x, _ in dl)
    best = max(best, n / (time.perf_counter() - t0))
print(json.dumps({"workers": workers, "img_per_s": best}))
