#!/usr/bin/env python3
"""Golden values for evorec's AdamW and gradient clipping: torch.optim.AdamW over two parameter
groups (weight decay 0.1 and 0), with torch.nn.utils.clip_grad_norm_ before each of 5 steps and a
learning rate that changes per step. Writes src/core/fixtures/adamw.json. Run by hand:
    /usr/bin/python3 reference/adamw.py"""
import json
import os
import torch

g = torch.Generator().manual_seed(3)
p1 = torch.randn(4, 3, generator=g, dtype=torch.float64).requires_grad_(True)
p2 = torch.randn(5, generator=g, dtype=torch.float64).requires_grad_(True)
init = [p1.detach().clone(), p2.detach().clone()]
opt = torch.optim.AdamW([{'params': [p1], 'weight_decay': 0.1}, {'params': [p2], 'weight_decay': 0.0}],
                        lr=0.01, betas=(0.9, 0.95), eps=1e-8)
grads, lrs, norms = [], [], []
for step in range(5):
    g1 = torch.randn(4, 3, generator=g, dtype=torch.float64) * (step + 1)
    g2 = torch.randn(5, generator=g, dtype=torch.float64)
    grads.append([g1.reshape(-1).tolist(), g2.tolist()])
    p1.grad, p2.grad = g1.clone(), g2.clone()
    norms.append(float(torch.nn.utils.clip_grad_norm_([p1, p2], 3.0)))
    lr = 0.01 * (step + 1) / 5
    lrs.append(lr)
    for grp in opt.param_groups:
        grp['lr'] = lr
    opt.step()
out = dict(init=[t.reshape(-1).tolist() for t in init], grads=grads, lrs=lrs, norms=norms, max_norm=3.0,
           final=[p1.detach().reshape(-1).tolist(), p2.detach().tolist()],
           exp_avg=[opt.state[p1]['exp_avg'].reshape(-1).tolist(), opt.state[p2]['exp_avg'].tolist()],
           exp_avg_sq=[opt.state[p1]['exp_avg_sq'].reshape(-1).tolist(), opt.state[p2]['exp_avg_sq'].tolist()],
           generator=f'reference/adamw.py, torch {torch.__version__}')
dst = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src', 'core', 'fixtures', 'adamw.json')
with open(dst, 'w') as f:
    json.dump(out, f)
print('wrote', os.path.normpath(dst))
