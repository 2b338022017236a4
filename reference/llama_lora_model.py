#!/usr/bin/env python3
"""Golden fixtures for evorec's decoder (src/nn): full Qwen2-style causal LMs with LoRA.

The model is written from scratch in PyTorch (float64 compute) exactly as transformers'
Qwen2ForCausalLM + PEFT LoRA compute it: token embedding, per layer RMSNorm -> attention
(q/k/v with bias, o without; grouped-query heads; RoPE "rotate_half" with base rope_theta) ->
residual -> RMSNorm -> SwiGLU MLP -> residual; final RMSNorm; untied lm_head (tied in variant deep).
LoRA (PEFT) on all seven projections of every layer (some, in variant deep):
y = W x + b + (alpha / r) * B (A x), dropout 0.

Outputs under src/nn/fixtures/:
  qwen2-lora-model/config.json + model.safetensors   (HF layout, F32)
  qwen2-lora-adapter/adapter_config.json + adapter_model.safetensors   (PEFT layout, F32)
  qwen2-lora-expected.json   inputs (ids, attention_mask: row 1 left-padded), labels (HF: shifted
                             inside the model, -100 ignored), logits, per-layer outputs, loss and
                             the gradient of the loss w.r.t. every LoRA matrix (PEFT key names).

Variant `deep` (--variant deep) writes the same files under the prefix qwen2-deep-: the `deep`
preset's shape where it matters, kept small enough to commit: 8 layers, 4 heads / 2 kv heads,
hidden 32, ffn 48, vocab 40, RoPE base 1e4, tied embeddings (no lm_head.weight in the file, as HF
writes a tied model), and a PEFT adapter on layers_to_transform [1, 4, 6] and target_modules
q_proj, v_proj, down_proj only (EvoRec's located updates). Its expected.json adds embed_grad: the
gradient w.r.t. the (tied) embedding matrix, input lookup and LM head together, with the embedding
trainable next to the adapter.

The weights are rounded to float32 (as stored) before the float64 computation. Run by hand
(never by tests or CI), without OPENBLAS_CORETYPE (a forced kernel changes the last digits):
  /usr/bin/python3 reference/llama_lora_model.py                  # qwen2-lora-* (default)
  /usr/bin/python3 reference/llama_lora_model.py --variant deep   # qwen2-deep-*
  /usr/bin/python3 reference/llama_lora_model.py --variant all    # both
"""
import argparse
import json
import math
import os
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "src", "nn", "fixtures")
DT = torch.float64

MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

CFG_LORA = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "vocab_size": 40,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
    "torch_dtype": "float32",
    "bos_token_id": None,
    "eos_token_id": 0,
    "pad_token_id": 1,
}
# The deep preset's shape (src/io/hf-config.ts: 8 layers, 4 / 2 heads, tied, RoPE 1e4), small sizes.
CFG_DEEP = {**CFG_LORA, "num_hidden_layers": 8, "rope_theta": 10000.0, "tie_word_embeddings": True}

VARIANTS = {
    # prefix, config, seed, LoRA layers (None: all) and modules, batch, sequence, left padding per row,
    # ignored (prompt) labels as (row, position)
    "lora": dict(prefix="qwen2-lora", cfg=CFG_LORA, seed=2024, layers=None, modules=MODULES,
                 batch=2, seq=7, pad=[0, 2], ignored=[(0, 2)]),
    "deep": dict(prefix="qwen2-deep", cfg=CFG_DEEP, seed=2025, layers=[1, 4, 6], modules=["q_proj", "v_proj", "down_proj"],
                 batch=2, seq=8, pad=[0, 3], ignored=[(0, 1), (0, 2), (1, 4)]),
}


def build(variant):
    V_ = VARIANTS[variant]
    CFG = V_["cfg"]
    V, D, F, L = CFG["vocab_size"], CFG["hidden_size"], CFG["intermediate_size"], CFG["num_hidden_layers"]
    H, HKV = CFG["num_attention_heads"], CFG["num_key_value_heads"]
    TIED = CFG["tie_word_embeddings"]
    DH = D // H
    R, ALPHA = 4, 8
    SCALE = ALPHA / R
    LORA_LAYERS = list(range(L)) if V_["layers"] is None else V_["layers"]
    LORA_MODULES = V_["modules"]
    SHAPES = {"q_proj": (H * DH, D), "k_proj": (HKV * DH, D), "v_proj": (HKV * DH, D), "o_proj": (D, H * DH),
              "gate_proj": (F, D), "up_proj": (F, D), "down_proj": (D, F)}

    g = torch.Generator().manual_seed(V_["seed"])

    def rnd(*shape, std=0.2):
        # rounded to float32 (what is stored), computed in float64
        return (torch.randn(*shape, generator=g, dtype=DT) * std).float().double()

    def group(m):
        return "self_attn" if m in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"

    W = {"model.embed_tokens.weight": rnd(V, D, std=0.5)}
    for l in range(L):
        W[f"model.layers.{l}.input_layernorm.weight"] = (1 + 0.1 * torch.randn(D, generator=g, dtype=DT)).float().double()
        for m in MODULES:
            W[f"model.layers.{l}.{group(m)}.{m}.weight"] = rnd(*SHAPES[m])
            if m in ("q_proj", "k_proj", "v_proj"):
                W[f"model.layers.{l}.{group(m)}.{m}.bias"] = rnd(SHAPES[m][0], std=0.1)
        W[f"model.layers.{l}.post_attention_layernorm.weight"] = (1 + 0.1 * torch.randn(D, generator=g, dtype=DT)).float().double()
    W["model.norm.weight"] = (1 + 0.1 * torch.randn(D, generator=g, dtype=DT)).float().double()
    if not TIED:
        W["lm_head.weight"] = rnd(V, D)

    LORA = {}
    for l in LORA_LAYERS:
        for m in LORA_MODULES:
            o, i = SHAPES[m]
            key = f"base_model.model.model.layers.{l}.{group(m)}.{m}"
            # B non-zero (a trained adapter) so that both A and B get informative gradients
            LORA[key + ".lora_A.weight"] = rnd(R, i, std=0.3).requires_grad_(True)
            LORA[key + ".lora_B.weight"] = rnd(o, R, std=0.3).requires_grad_(True)
    if TIED:
        # the tied embedding trained too (full fine-tuning of one base weight): its gradient sums the
        # input lookup and the LM head
        W["model.embed_tokens.weight"].requires_grad_(True)

    B, T = V_["batch"], V_["seq"]
    ids = torch.randint(2, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    for b, n in enumerate(V_["pad"]):
        if n:
            mask[b, :n] = 0
            ids[b, :n] = 1  # pad id
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    labels = ids.clone()
    labels[mask == 0] = -100
    for b, t in V_["ignored"]:
        labels[b, t] = -100  # an ignored (prompt) token

    def rmsnorm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + CFG["rms_norm_eps"]) * w

    def rope(x):  # [B, T, heads, DH]
        inv = 1.0 / (CFG["rope_theta"] ** (torch.arange(0, DH, 2, dtype=DT) / DH))
        fr = positions.to(DT)[:, :, None] * inv
        emb = torch.cat([fr, fr], -1)[:, :, None, :]
        x1, x2 = x[..., : DH // 2], x[..., DH // 2:]
        return x * emb.cos() + torch.cat([-x2, x1], -1) * emb.sin()

    def proj(x, l, m):
        base = f"model.layers.{l}.{group(m)}.{m}"
        y = x @ W[base + ".weight"].T
        if base + ".bias" in W:
            y = y + W[base + ".bias"]
        k = "base_model.model." + base
        if k + ".lora_A.weight" not in LORA:  # not targeted (layers_to_transform / target_modules)
            return y
        return y + SCALE * ((x @ LORA[k + ".lora_A.weight"].T) @ LORA[k + ".lora_B.weight"].T)

    def attention(x, l):
        q = rope(proj(x, l, "q_proj").view(B, T, H, DH)).transpose(1, 2)
        k = rope(proj(x, l, "k_proj").view(B, T, HKV, DH)).transpose(1, 2)
        v = proj(x, l, "v_proj").view(B, T, HKV, DH).transpose(1, 2)
        k = k.repeat_interleave(H // HKV, dim=1)
        v = v.repeat_interleave(H // HKV, dim=1)
        s = q @ k.transpose(-1, -2) / math.sqrt(DH)
        allowed = torch.tril(torch.ones(T, T, dtype=torch.bool))[None, None] & (mask[:, None, None, :] == 1)
        s = s.masked_fill(~allowed, float("-inf"))
        p = torch.nan_to_num(torch.softmax(s, -1), nan=0.0)  # fully masked rows (left padding) -> 0
        o = (p @ v).transpose(1, 2).reshape(B, T, H * DH)
        return proj(o, l, "o_proj")

    x = W["model.embed_tokens.weight"][ids]
    layer_outputs = []
    for l in range(L):
        x = x + attention(rmsnorm(x, W[f"model.layers.{l}.input_layernorm.weight"]), l)
        n = rmsnorm(x, W[f"model.layers.{l}.post_attention_layernorm.weight"])
        x = x + proj(torch.nn.functional.silu(proj(n, l, "gate_proj")) * proj(n, l, "up_proj"), l, "down_proj")
        layer_outputs.append(x)
    head = W["model.embed_tokens.weight"] if TIED else W["lm_head.weight"]
    logits = rmsnorm(x, W["model.norm.weight"]) @ head.T
    # HF causal-LM loss: logits[:, :-1] predict labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
    loss.backward()

    def write_safetensors(path, named, metadata):
        header = {"__metadata__": metadata}
        chunks, off = [], 0
        for name, t in named:
            b = t.detach().float().contiguous().numpy().astype("<f4").tobytes()
            header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
            chunks.append(b)
            off += len(b)
        h = json.dumps(header, separators=(",", ":")).encode("utf-8")
        h += b" " * ((8 - len(h) % 8) % 8)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for c in chunks:
                f.write(c)

    def flat(t):
        return [float("%.10g" % v) for v in t.detach().reshape(-1).tolist()]

    prefix = V_["prefix"]
    model_dir = os.path.join(OUT, prefix + "-model")
    adapter_dir = os.path.join(OUT, prefix + "-adapter")
    os.makedirs(model_dir, exist_ok=True)
    os.makedirs(adapter_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
    write_safetensors(os.path.join(model_dir, "model.safetensors"), sorted(W.items()), {"format": "pt"})
    adapter_cfg = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": R, "lora_alpha": ALPHA, "lora_dropout": 0.0,
        "target_modules": LORA_MODULES, "bias": "none", "base_model_name_or_path": None, "revision": None,
        "fan_in_fan_out": False, "layers_to_transform": V_["layers"], "layers_pattern": None, "modules_to_save": None,
        "inference_mode": True, "init_lora_weights": True, "use_rslora": False, "use_dora": False,
        "rank_pattern": {}, "alpha_pattern": {},
    }
    with open(os.path.join(adapter_dir, "adapter_config.json"), "w") as f:
        json.dump(adapter_cfg, f, indent=2, sort_keys=True)
    write_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"), sorted(LORA.items()), {"format": "pt"})

    expected = dict(
        batch=B, seq=T,
        ids=ids.reshape(-1).tolist(),
        attention_mask=mask.reshape(-1).tolist(),
        positions=positions.reshape(-1).tolist(),
        labels=labels.reshape(-1).tolist(),
        logits=flat(logits),
        layer_outputs=[flat(h) for h in layer_outputs],
        loss=float(loss),
        lora_grads={k: flat(v.grad) for k, v in LORA.items()},
    )
    if TIED:
        expected["embed_grad"] = flat(W["model.embed_tokens.weight"].grad)
    expected["generator"] = f"reference/llama_lora_model.py, torch {torch.__version__}, float64 compute on float32 weights"
    if variant != "lora":
        expected["generator"] += f", --variant {variant}"
    with open(os.path.join(OUT, prefix + "-expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
    print(f"{variant}: loss {float(loss):.6f}; wrote {os.path.normpath(OUT)}/{prefix}-*")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", choices=[*VARIANTS, "all"], default="lora")
    args = ap.parse_args()
    for v in (VARIANTS if args.variant == "all" else [args.variant]):
        build(v)
