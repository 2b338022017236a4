"""Golden values for src/evolve/peso.test.ts: PESO's proximal term and its gradient, from PyTorch.

PESO (Yoo et al., ICLR 2026) anchors the evolving LoRA adapter to its previous state by a KL divergence
between the softmax-normalised matrices (row-wise over the last dimension), summed over matrices and
weighted by 2.0. Run: /usr/bin/python3 reference/peso_penalty.py  (Debian's python3-torch)
"""
import json

import torch

torch.manual_seed(7)
shapes = [(2, 5), (4, 2), (3, 3)]
prev = [torch.randn(*s) * 0.7 for s in shapes]
cur = [p + torch.randn_like(p) * 0.3 for p in prev]
cs = [c.clone().requires_grad_(True) for c in cur]
val = sum(torch.nn.functional.kl_div(torch.log_softmax(c, -1), torch.softmax(p, -1), reduction="batchmean") for c, p in zip(cs, prev)) * 2.0
val.backward()
out = {
    "generator": "torch %s: sum over matrices of F.kl_div(F.log_softmax(cur, -1), F.softmax(prev, -1), reduction='batchmean'), x 2.0; and its gradient" % torch.__version__,
    "weight": 2.0,
    "shapes": shapes,
    "prev": [p.flatten().tolist() for p in prev],
    "cur": [c.detach().flatten().tolist() for c in cur],
    "value": val.item(),
    "grad": [c.grad.flatten().tolist() for c in cs],
}
json.dump(out, open("src/evolve/fixtures/peso-penalty.json", "w"), indent=1)
print(val.item())
