# The Python side of bench:fewshot: the nearest-prototype classifier written directly in PyTorch on torchvision's
# squeezenet1_1 (Debian's PyTorch 1.13), the same draws. Prints one JSON line: accuracy per draw.
import json, sys
import torch, torchvision
import torchvision.transforms as T
from PIL import Image

spec = json.load(open(sys.argv[1]))
torch.set_num_threads(2)
m = torchvision.models.squeezenet1_1()
m.load_state_dict(torch.load(spec['weights']))
m.eval()
tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
cache = {}
def embed(path):
    if path not in cache:
        with torch.no_grad():
            x = tf(Image.open(path).convert('RGB'))[None]
            cache[path] = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(m.features(x), 1), 1)[0]
    return cache[path]
norm = torch.nn.functional.normalize
val = torch.stack([embed(s['path']) for s in spec['val']])
labels = torch.tensor([s['label'] for s in spec['val']])
acc, preds, margins = [], [], []
for support in spec['plan']:
    protos = torch.stack([norm(norm(torch.stack([embed(p) for p in support[c]]), dim=1).mean(0), dim=0) for c in spec['classes']])
    cos = norm(val, dim=1) @ protos.t()
    acc.append(cos.argmax(1).eq(labels).float().mean().item())
    preds.append(cos.argmax(1).tolist())
    top = cos.topk(2, 1).values
    margins.append((top[:, 0] - top[:, 1]).tolist())
print(json.dumps({'accuracy': acc, 'predictions': preds, 'margins': margins}))
