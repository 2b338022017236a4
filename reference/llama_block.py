#!/usr/bin/env python3
"""Golden values for the evorec engine: a 2-layer Llama-style decoder in PyTorch (float64).

RMSNorm, rotary embedding (HF rotate_half), grouped-query causal attention with a key-padding mask
(row 1 left-padded), SwiGLU MLP, final norm, untied LM head, cross-entropy with ignore index -100.
Writes src/core/fixtures/llama_block.json: config, inputs, weights, logits, loss and the gradient
of the loss with respect to every weight. Run by hand (never by tests or CI):

    /usr/bin/python3 reference/llama_block.py   # or $PYTHON reference/llama_block.py
"""
import json
import math
import os
import torch

torch.manual_seed(0)
DT = torch.float64
cfg = dict(vocab=48, d_model=32, n_heads=4, n_kv_heads=2, head_dim=8, ffn=64, n_layers=2,
           rope_base=10000.0, eps=1e-6, batch=2, seq=7)
V, D, H, HKV, DH, F, L = (cfg[k] for k in ('vocab', 'd_model', 'n_heads', 'n_kv_heads', 'head_dim', 'ffn', 'n_layers'))
B, T = cfg['batch'], cfg['seq']
g = torch.Generator().manual_seed(1234)


def randn(*shape, std=0.2):
    return (torch.randn(*shape, generator=g, dtype=DT) * std).requires_grad_(True)


W = {'embed': randn(V, D, std=0.5)}
for l in range(L):
    p = f'layers.{l}.'
    W[p + 'input_norm'] = (1 + 0.1 * torch.randn(D, generator=g, dtype=DT)).requires_grad_(True)
    W[p + 'q_proj'] = randn(H * DH, D)
    W[p + 'k_proj'] = randn(HKV * DH, D)
    W[p + 'v_proj'] = randn(HKV * DH, D)
    W[p + 'o_proj'] = randn(D, H * DH)
    W[p + 'post_norm'] = (1 + 0.1 * torch.randn(D, generator=g, dtype=DT)).requires_grad_(True)
    W[p + 'gate_proj'] = randn(F, D)
    W[p + 'up_proj'] = randn(F, D)
    W[p + 'down_proj'] = randn(D, F)
W['final_norm'] = (1 + 0.1 * torch.randn(D, generator=g, dtype=DT)).requires_grad_(True)
W['lm_head'] = randn(V, D)

ids = torch.randint(0, V, (B, T), generator=g)
mask = torch.ones(B, T, dtype=torch.long)
mask[1, :2] = 0  # row 1 left-padded by two
ids[1, :2] = 0
positions = (mask.cumsum(-1) - 1).clamp(min=0)
labels = torch.full((B, T), -100, dtype=torch.long)
labels[:, :-1] = ids[:, 1:]
labels[mask == 0] = -100
labels[0, 0] = -100  # an ignored prompt token


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg['eps']) * w


def rope(x):  # x [B, T, heads, DH]
    inv = 1.0 / (cfg['rope_base'] ** (torch.arange(0, DH, 2, dtype=DT) / DH))
    fr = positions.to(DT)[:, :, None] * inv  # [B, T, DH/2]
    emb = torch.cat([fr, fr], -1)[:, :, None, :]
    x1, x2 = x[..., : DH // 2], x[..., DH // 2:]
    return x * emb.cos() + torch.cat([-x2, x1], -1) * emb.sin()


def attention(x, p):
    q = rope((x @ W[p + 'q_proj'].T).view(B, T, H, DH)).transpose(1, 2)
    k = rope((x @ W[p + 'k_proj'].T).view(B, T, HKV, DH)).transpose(1, 2)
    v = (x @ W[p + 'v_proj'].T).view(B, T, HKV, DH).transpose(1, 2)
    k = k.repeat_interleave(H // HKV, dim=1)
    v = v.repeat_interleave(H // HKV, dim=1)
    s = q @ k.transpose(-1, -2) / math.sqrt(DH)
    allowed = torch.tril(torch.ones(T, T, dtype=torch.bool))[None, None] & (mask[:, None, None, :] == 1)
    s = s.masked_fill(~allowed, float('-inf'))
    prob = torch.softmax(s, -1)
    prob = torch.nan_to_num(prob, nan=0.0)  # fully masked query rows attend to nothing -> output 0
    o = (prob @ v).transpose(1, 2).reshape(B, T, H * DH)
    return o @ W[p + 'o_proj'].T


x = W['embed'][ids]
for l in range(L):
    p = f'layers.{l}.'
    x = x + attention(rmsnorm(x, W[p + 'input_norm']), p)
    n = rmsnorm(x, W[p + 'post_norm'])
    x = x + (torch.nn.functional.silu(n @ W[p + 'gate_proj'].T) * (n @ W[p + 'up_proj'].T)) @ W[p + 'down_proj'].T
logits = rmsnorm(x, W['final_norm']) @ W['lm_head'].T
loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100)
loss.backward()


def flat(t):
    return [float('%.10g' % v) for v in t.detach().reshape(-1).tolist()]


out = dict(
    config=cfg,
    ids=ids.reshape(-1).tolist(),
    mask=mask.reshape(-1).tolist(),
    positions=positions.reshape(-1).tolist(),
    labels=labels.reshape(-1).tolist(),
    weights={k: dict(shape=list(v.shape), data=flat(v)) for k, v in W.items()},
    logits=flat(logits),
    loss=float(loss),
    grads={k: flat(v.grad) for k, v in W.items()},
    generator=f'reference/llama_block.py, torch {torch.__version__}, float64',
)
dst = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src', 'core', 'fixtures', 'llama_block.json')
with open(dst, 'w') as f:
    json.dump(out, f, separators=(',', ':'))
print(f'loss {float(loss):.6f}; wrote {os.path.normpath(dst)}')
