#!/usr/bin/env python3
"""PyTorch twin of the LLMRec workload of bench/llmrec-twin.ts, on the same weights and the same token ids.

The model is the Qwen2-style decoder of src/nn/decoder.ts written out in PyTorch (float32): token
embedding, per layer RMSNorm -> grouped-query causal attention (q/k/v bias, RoPE "rotate_half") ->
residual -> RMSNorm -> SwiGLU MLP -> residual, final RMSNorm, LM head tied to the embedding; PEFT LoRA
on all seven projections, y = W x + b + (alpha / r) B A dropout(x), base frozen. No HF transformers.

(a) training: one AdamW step (weight decay 0.01 on the LoRA matrices, gradient clipping at norm 1) on
    each of the bench's LLMRec batches (right-padded prompt + answer, loss on the answer tokens only, the
    LM head only at the rows that carry a target, as ours);
(b) scoring: per 8 users, the left-padded prompts run once into a KV cache; the cache is repeated for
    each user's 20 candidates (index_select, a copy) and the candidates' answer tokens run as one
    right-padded batch; the score is the summed log-probability of the answer tokens (LM head at real
    answer positions only). 'padded' computes every position of the padded batches (what a plain
    PyTorch model does); 'packed' skips padded positions in the per-token work, as ours does
    (only attention sees the padded layout).

Usage: python3 bench/torch_llmrec.py <dir written by llmrec-twin.ts> <threads: t or t:b (torch t, OpenBLAS b), comma-separated> <verify 0|1>
Prints one JSON line. Python is only for benches: no test depends on it.
"""
import json
import math
import os
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_blas import blas_info, set_blas_threads  # noqa: E402

MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']


def group(m):
    return 'self_attn' if m in ('q_proj', 'k_proj', 'v_proj', 'o_proj') else 'mlp'


def read_safetensors(path):
    with open(path, 'rb') as f:
        buf = f.read()
    n = struct.unpack('<Q', buf[:8])[0]
    header = json.loads(buf[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        assert v['dtype'] == 'F32', (k, v['dtype'])
        a, b = v['data_offsets']
        out[k] = torch.frombuffer(bytearray(buf[8 + n + a:8 + n + b]), dtype=torch.float32).reshape(v['shape']).clone()
    return out


class Twin:
    def __init__(self, cfg, lora, W):
        self.D, self.H, self.HKV, self.DH = cfg['hiddenSize'], cfg['numAttentionHeads'], cfg['numKeyValueHeads'], cfg['headDim']
        self.G = self.H // self.HKV
        self.eps = cfg['rmsNormEps']
        self.embed = W['model.embed_tokens.weight']
        self.head = self.embed if cfg['tieWordEmbeddings'] else W['lm_head.weight']
        self.norm = W['model.norm.weight']
        self.scale = lora['alpha'] / lora['r']
        self.dropout = lora['dropout']
        self.layers = []
        for l in range(cfg['numHiddenLayers']):
            lay = {'in': W[f'model.layers.{l}.input_layernorm.weight'], 'post': W[f'model.layers.{l}.post_attention_layernorm.weight']}
            for m in MODULES:
                base = f'model.layers.{l}.{group(m)}.{m}'
                key = f'lora.default.base_model.model.{base}'
                A = W[key + '.lora_A.weight'].clone().requires_grad_(True)
                B = W[key + '.lora_B.weight'].clone().requires_grad_(True)
                lay[m] = (W[base + '.weight'], W.get(base + '.bias'), A, B, key)
            self.layers.append(lay)
        # RoPE table in float64, rounded once
        inv = 1.0 / (cfg['ropeTheta'] ** (torch.arange(0, self.DH, 2, dtype=torch.float64) / self.DH))
        fr = torch.arange(max(4096, cfg['maxPositionEmbeddings']), dtype=torch.float64)[:, None] * inv
        emb = torch.cat([fr, fr], -1)
        self.cos, self.sin = emb.cos().float(), emb.sin().float()

    def named_lora(self):
        return [(lay[m][4] + s, t) for lay in self.layers for m in MODULES for s, t in (('.lora_A.weight', lay[m][2]), ('.lora_B.weight', lay[m][3]))]

    def params(self):
        return [t for _, t in self.named_lora()]

    def proj(self, lay, m, x, training):
        w, b, A, B, _ = lay[m]
        y = F.linear(x, w, b)
        xa = F.dropout(x, self.dropout, True) if training and self.dropout > 0 else x
        return y + F.linear(F.linear(xa, A), B) * self.scale

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, cos, sin):  # x [N, heads, DH], cos/sin [N, 1, DH]
        h = self.DH // 2
        return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin

    def forward(self, ids, mask, pos, past=None, past_mask=None, pack=False, training=False):
        """ids, pos [B, T] long; mask [B, T] bool; past: per layer (k, v) [B, HKV, S, DH] after RoPE,
        past_mask [B, S]. Returns the final-norm hidden states ([N, D] of the real positions when
        packed, else [B*T, D]) and the per-layer (k, v) of [past ; new]."""
        B, T = ids.shape
        H, HKV, DH = self.H, self.HKV, self.DH
        idx = mask.reshape(-1).nonzero().squeeze(1) if pack else None
        flat_ids, flat_pos = ids.reshape(-1), pos.reshape(-1)
        if pack:
            flat_ids, flat_pos = flat_ids[idx], flat_pos[idx]
        x = self.embed[flat_ids]
        cos, sin = self.cos[flat_pos][:, None], self.sin[flat_pos][:, None]

        def padded(t):  # [N, W] -> [B, T, W]
            if not pack:
                return t.view(B, T, -1)
            out = t.new_zeros(B * T, t.shape[-1])
            out[idx] = t
            return out.view(B, T, -1)

        own = torch.ones(T, T, dtype=torch.bool).tril()[None] & mask[:, None, :]
        own = own | torch.eye(T, dtype=torch.bool)[None]  # padded queries see themselves: no empty softmax row
        allowed = own if past is None else torch.cat([past_mask[:, None, :].expand(B, T, past_mask.shape[1]), own], 2)
        bias = torch.zeros(allowed.shape).masked_fill_(~allowed, float('-inf'))[:, None]  # [B, 1, T, S+T]
        present = []
        for l, lay in enumerate(self.layers):
            h = self.rms(x, lay['in'])
            q = self.rope(self.proj(lay, 'q_proj', h, training).view(-1, H, DH), cos, sin)
            k = self.rope(self.proj(lay, 'k_proj', h, training).view(-1, HKV, DH), cos, sin)
            v = self.proj(lay, 'v_proj', h, training)
            q = padded(q.reshape(-1, H * DH)).view(B, T, H, DH).transpose(1, 2)
            k = padded(k.reshape(-1, HKV * DH)).view(B, T, HKV, DH).transpose(1, 2)
            v = padded(v).view(B, T, HKV, DH).transpose(1, 2)
            if past is not None:
                k = torch.cat([past[l][0], k], 2)
                v = torch.cat([past[l][1], v], 2)
            present.append((k, v))
            s = q @ k.repeat_interleave(self.G, 1).transpose(-1, -2) * (1.0 / math.sqrt(DH)) + bias
            a = (torch.softmax(s, -1) @ v.repeat_interleave(self.G, 1)).transpose(1, 2).reshape(B * T, H * DH)
            if pack:
                a = a[idx]
            x = x + self.proj(lay, 'o_proj', a, training)
            n = self.rms(x, lay['post'])
            x = x + self.proj(lay, 'down_proj', F.silu(self.proj(lay, 'gate_proj', n, training)) * self.proj(lay, 'up_proj', n, training), training)
        return self.rms(x, self.norm), present


def positions(mask):
    return (mask.long().cumsum(1) - 1).clamp(min=0)


# ---------------------------------------------------------------------------------------------
# (a) training

def to_batches(data):
    out = []
    for b in data['batches']:
        B, T = b['batch'], b['seqLen']
        ids = torch.tensor(b['ids'], dtype=torch.long).view(B, T)
        mask = torch.tensor(b['mask'], dtype=torch.bool).view(B, T)
        labels = torch.tensor(b['labels'], dtype=torch.long).view(B, T)
        tgt = torch.full((B, T), -100, dtype=torch.long)
        tgt[:, :-1] = labels[:, 1:]  # HF shift: position t predicts labels[t + 1]
        sel = (tgt.reshape(-1) != -100).nonzero().squeeze(1)
        out.append((ids, mask, positions(mask), sel, tgt.reshape(-1)[sel]))
    return out


def loss_of(model, batch, training):
    ids, mask, pos, sel, tgt = batch
    h, _ = model.forward(ids, mask, pos, training=training)
    return F.cross_entropy(F.linear(h[sel], model.head), tgt)


def make_opt(model, t):
    return torch.optim.AdamW(model.params(), lr=t['lr'], betas=tuple(t['betas']), eps=t['eps'], weight_decay=t['weightDecay'])


def train_step(model, opt, batch, clip, training=True):
    opt.zero_grad(set_to_none=True)
    loss = loss_of(model, batch, training)
    loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(model.params(), clip)
    opt.step()
    return float(loss), float(gn)


# ---------------------------------------------------------------------------------------------
# (b) scoring

def score_chunk(model, prompts, answers, pad, pack):
    U = len(prompts)
    Tp = max(len(p) for p in prompts)
    ids = torch.full((U, Tp), pad, dtype=torch.long)
    mask = torch.zeros(U, Tp, dtype=torch.bool)
    for u, p in enumerate(prompts):  # left-padded: every prompt ends at the last position
        ids[u, Tp - len(p):] = torch.tensor(p)
        mask[u, Tp - len(p):] = True
    h, present = model.forward(ids, mask, positions(mask), pack=pack)
    last = h[mask.long().sum(1).cumsum(0) - 1] if pack else h.view(U, Tp, -1)[:, -1]
    first_lp = torch.log_softmax(F.linear(last, model.head), -1)  # [U, V]

    rows_user = [u for u, cs in enumerate(answers) for _ in cs]
    flat = [a for cs in answers for a in cs]
    R = len(flat)
    La = max(1, max(len(a) - 1 for a in flat))
    a_ids = torch.full((R, La), pad, dtype=torch.long)
    a_mask = torch.zeros(R, La, dtype=torch.bool)
    a_tgt = torch.zeros(R, La, dtype=torch.long)
    for r, a in enumerate(flat):  # every answer token but the last is an input; right-padded
        n = len(a) - 1
        if n > 0:
            a_ids[r, :n] = torch.tensor(a[:-1])
            a_tgt[r, :n] = torch.tensor(a[1:])
            a_mask[r, :n] = True
    ru = torch.tensor(rows_user)
    next_pos = mask.long().sum(1)[ru]
    a_pos = next_pos[:, None] + torch.arange(La)[None]
    rep = [(k.index_select(0, ru), v.index_select(0, ru)) for k, v in present]
    h2, _ = model.forward(a_ids, a_mask, a_pos, past=rep, past_mask=mask.index_select(0, ru), pack=pack)
    flat_mask = a_mask.reshape(-1)
    rows = h2 if pack else h2[flat_mask]
    lp = torch.log_softmax(F.linear(rows, model.head), -1)
    g = lp.gather(1, a_tgt.reshape(-1)[flat_mask][:, None]).squeeze(1)
    row_of = torch.arange(R)[:, None].expand(R, La).reshape(-1)[flat_mask]
    first = first_lp[ru, torch.tensor([a[0] for a in flat])]
    scores = first.index_add(0, row_of, g)
    out, r = [], 0
    for cs in answers:
        out.append(scores[r:r + len(cs)])
        r += len(cs)
    return out


def score_all(model, sc, pack, n_users=None):
    per = sc['usersPerBatch']
    U = len(sc['prompts']) if n_users is None else n_users
    out = []
    with torch.no_grad():
        for s in range(0, U, per):
            out.extend(score_chunk(model, sc['prompts'][s:min(U, s + per)], sc['answers'][s:min(U, s + per)], sc['pad'], pack))
    return out


# ---------------------------------------------------------------------------------------------

def main():
    d = sys.argv[1]
    # 't' (torch and OpenBLAS threads t) or 't:b' (torch threads t, OpenBLAS threads b)
    threads = [tuple(int(x) for x in (c.split(':') * 2)[:2]) for c in sys.argv[2].split(',')]
    verify = sys.argv[3] == '1'
    data = json.load(open(os.path.join(d, 'data.json')))
    W = read_safetensors(os.path.join(d, 'weights.safetensors'))
    cfg, lora, topt, sc = data['config'], data['lora'], data['trainer'], data['score']
    batches = to_batches(data)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    res = dict(blas=blas_info(torch))
    set_blas_threads(1)

    if verify:
        v = data['verify']
        model = Twin(cfg, lora, W)
        scores = score_all(model, sc, pack=False, n_users=len(v['scores']))
        scores_packed = score_all(model, sc, pack=True, n_users=len(v['scores']))
        ref = torch.tensor(v['scores'])
        got = torch.stack(scores)
        # the training step without dropout: loss, clipped gradients, loss after the AdamW step
        opt = make_opt(model, topt)
        opt.zero_grad(set_to_none=True)
        loss0 = loss_of(model, batches[0], False)
        loss0.backward()
        gn = float(torch.nn.utils.clip_grad_norm_(model.params(), topt['clipNorm']))
        G = read_safetensors(os.path.join(d, 'grads.safetensors'))
        gdiff = max(float((t.grad - G[k]).abs().max()) for k, t in model.named_lora())
        gmax = max(float(G[k].abs().max()) for k, _ in model.named_lora())
        opt.step()
        with torch.no_grad():
            loss1 = float(loss_of(model, batches[0], False))
        res['verify'] = dict(
            score_max_abs_diff=float((got - ref).abs().max()),
            score_packed_max_abs_diff=float((torch.stack(scores_packed) - ref).abs().max()),
            score_max_abs=float(ref.abs().max()),
            scores_compared=int(ref.numel()),
            loss0=float(loss0), loss0_ours=v['loss0'], grad_norm=gn, grad_norm_ours=v['gradNorm'],
            grad_max_abs_diff=gdiff, grad_max_abs=gmax, loss1=loss1, loss1_ours=v['loss1'])

    res['runs'] = []
    warm = data['warmup']
    for t, bt in threads:
        torch.set_num_threads(t)
        set_blas_threads(bt)
        model = Twin(cfg, lora, W)
        opt = make_opt(model, topt)
        for i in range(warm):
            train_step(model, opt, batches[i % len(batches)], topt['clipNorm'])
        times = []
        for b in batches:
            t0 = time.perf_counter()
            train_step(model, opt, b, topt['clipNorm'])
            times.append((time.perf_counter() - t0) * 1000)
        model = Twin(cfg, lora, W)
        run = dict(threads=t, blas_threads=bt, train_ms=times)
        for mode in ('padded', 'packed'):
            score_all(model, sc, pack=mode == 'packed', n_users=sc['usersPerBatch'])  # warm-up
            t0 = time.perf_counter()
            score_all(model, sc, pack=mode == 'packed')
            run[f'score_{mode}_s'] = time.perf_counter() - t0
        res['runs'].append(run)
    res['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


main()
