#!/usr/bin/env python3
"""PyTorch twin of bench/model.ts + bench/step.ts: one training step (forward, backward, AdamW) of the
same Llama-style model (RMSNorm, RoPE, causal attention, SwiGLU, untied LM head), full or LoRA.
Prints one JSON line. Usage: python3 bench/torch_step.py '<config json>' full|lora steps warmup torch_threads
(run by bench/run.ts with OPENBLAS_NUM_THREADS set in the environment)."""
import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F

cfg = json.loads(sys.argv[1])
mode = sys.argv[2]
steps, warmup, threads = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
m = cfg['model']
V, D, H, HKV, FF, L = m['vocab'], m['dModel'], m['nHeads'], m['nKvHeads'], m['ffn'], m['nLayers']
DH = D // H
B, T = cfg['batch'], cfg['seq']


def param(*shape):
    return torch.nn.Parameter(torch.randn(*shape) * 0.02)


P = {'embed': param(V, D), 'final_norm': torch.nn.Parameter(torch.ones(D)), 'lm_head': param(V, D)}
for l in range(L):
    p = f'layers.{l}.'
    P[p + 'input_norm'] = torch.nn.Parameter(torch.ones(D))
    P[p + 'post_norm'] = torch.nn.Parameter(torch.ones(D))
    P[p + 'q_proj'] = param(H * DH, D)
    P[p + 'k_proj'] = param(HKV * DH, D)
    P[p + 'v_proj'] = param(HKV * DH, D)
    P[p + 'o_proj'] = param(D, H * DH)
    P[p + 'gate_proj'] = param(FF, D)
    P[p + 'up_proj'] = param(FF, D)
    P[p + 'down_proj'] = param(D, FF)

LORA = {}
scale = 0.0
if mode == 'lora':
    r = cfg['loraRank']
    scale = 2.0 * r / r
    for t in P.values():
        t.requires_grad_(False)
    for name, w in list(P.items()):
        if name.endswith('_proj'):
            a = torch.nn.Parameter(torch.empty(r, w.shape[1]).uniform_(-1 / math.sqrt(w.shape[1]), 1 / math.sqrt(w.shape[1])))
            LORA[name] = (a, torch.nn.Parameter(torch.zeros(w.shape[0], r)))

inv = 1.0 / (m['ropeBase'] ** (torch.arange(0, DH, 2).float() / DH))
fr = torch.arange(T).float()[:, None] * inv
emb = torch.cat([fr, fr], -1)
COS, SIN = emb.cos()[None, None], emb.sin()[None, None]
CAUSAL = torch.full((T, T), float('-inf')).triu(1)


def proj(x, name):
    y = F.linear(x, P[name])
    if name in LORA:
        a, b = LORA[name]
        y = y + F.linear(F.linear(x, a), b) * scale
    return y


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + m['eps']) * w


def rope(x):
    x1, x2 = x[..., : DH // 2], x[..., DH // 2:]
    return x * COS + torch.cat([-x2, x1], -1) * SIN


def loss_fn(ids, targets):
    x = P['embed'][ids]
    for l in range(L):
        p = f'layers.{l}.'
        h = rms(x, P[p + 'input_norm'])
        q = rope(proj(h, p + 'q_proj').view(B, T, H, DH).transpose(1, 2))
        k = rope(proj(h, p + 'k_proj').view(B, T, HKV, DH).transpose(1, 2))
        v = proj(h, p + 'v_proj').view(B, T, HKV, DH).transpose(1, 2)
        if HKV != H:
            k = k.repeat_interleave(H // HKV, 1)
            v = v.repeat_interleave(H // HKV, 1)
        s = q @ k.transpose(-1, -2) / math.sqrt(DH) + CAUSAL
        a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, H * DH)
        x = x + proj(a, p + 'o_proj')
        n = rms(x, P[p + 'post_norm'])
        x = x + proj(F.silu(proj(n, p + 'gate_proj')) * proj(n, p + 'up_proj'), p + 'down_proj')
    logits = F.linear(rms(x, P['final_norm']), P['lm_head'])
    return F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-100)


params = [t for t in P.values() if t.requires_grad] + [t for ab in LORA.values() for t in ab]
opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
ids = torch.randint(0, V, (B, T))
targets = torch.full((B, T), -100, dtype=torch.long)
targets[:, :-1] = ids[:, 1:]
times = []
for s in range(warmup + steps):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(ids, targets)
    loss.backward()
    opt.step()
    dt = (time.perf_counter() - t0) * 1000
    if s >= warmup:
        times.append(dt)
times.sort()
print(json.dumps(dict(mode=mode, torch=torch.__version__, threads=threads, median_ms=times[len(times) // 2],
                      min_ms=times[0], loss=float(loss), trainable=sum(p.numel() for p in params),
                      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
