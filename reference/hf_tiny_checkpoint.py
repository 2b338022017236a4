#!/usr/bin/env python3
"""A tiny random Qwen2 checkpoint in exactly the Hugging Face folder layout, with expected logits.

Writes src/io/fixtures/qwen2-tiny-hf/ as `transformers` + `tokenizers` lay out a Qwen2 model
(Qwen2-0.5B's files, at toy sizes):

  config.json                         Qwen2ForCausalLM fields as transformers 4.4x writes them
                                      (torch_dtype bfloat16, tied embeddings, rope_theta 1e6,
                                      sliding_window / use_sliding_window / max_window_layers,
                                      bos/eos ids), vocab_size padded past the tokenizer (as
                                      Qwen2's 151936 > 151646 tokenizer ids)
  model-00001-of-00002.safetensors    BF16 weights in two shards (embedding + layer 0 | layer 1 +
  model-00002-of-00002.safetensors    final norm), no lm_head.weight (tied)
  model.safetensors.index.json        {"metadata": {"total_size"}, "weight_map"}
  tokenizer.json                      byte-level BPE in HF's format, written by hand: NFC normalizer,
                                      Sequence[Split(Qwen2 regex, Isolated), ByteLevel(use_regex
                                      false)], 256 byte symbols + merges learnt here, special tokens
                                      <|endoftext|> <|im_start|> <|im_end|> only in added_tokens
                                      (ids after the BPE vocab, as in Qwen2)
  tokenizer_config.json               Qwen2's: chat_template, eos_token, pad_token null (evorec pads
                                      with eos then), bos_token null, added_tokens_decoder, ...
  generation_config.json              eos_token_id a list (as Qwen2-Instruct's)

and src/io/fixtures/qwen2-tiny-hf-expected.json: token ids of a few texts (encoded here with the
merges and an ASCII transcription of the Qwen2 pre-split regex, exact on ASCII text) and the logits
of a few token sequences from a float64 forward written from scratch (the math of
reference/llama_lora_model.py, no adapter) on the bfloat16-rounded weights.

Run by hand (never by tests or CI): /usr/bin/python3 reference/hf_tiny_checkpoint.py
"""
import json
import math
import os
import re
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "..", "src", "io", "fixtures")
MODEL_DIR = os.path.join(OUT_DIR, "qwen2-tiny-hf")
DT = torch.float64

# ---------------------------------------------------------------------------------------------
# Tokenizer

QWEN2_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
# The same regex for ASCII text (Python's re has no \p{L}); exact on ASCII input.
ASCII_SPLIT = re.compile(r"'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
NUM_MERGES = 120

CORPUS = [
    "A customer bought these items, oldest first:",
    "The next item the customer buys is:",
    "red apple", "green pear", "blue plum", "gold melon", "pink peach", "black grape", "white lime",
    "brown fig", "gray kiwi", "tan date", "red cherry", "green apple", "blue berry", "gold pear",
    "You are a helpful assistant.", "system", "user", "assistant",
] + [f"\n{i}. " for i in range(1, 11)]


def bytes_to_unicode():
    """GPT-2's byte -> printable symbol table (the order of Qwen2's first 256 vocab ids)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return list(zip(bs, [chr(c) for c in cs]))


BYTE_SYMBOLS = bytes_to_unicode()
B2U = dict(BYTE_SYMBOLS)


def words(text):
    return ["".join(B2U[b] for b in w.encode("utf-8")) for w in ASCII_SPLIT.findall(text)]


def learn_merges(corpus, n):
    counts = {}
    for text in corpus:
        for w in words(text):
            counts[w] = counts.get(w, 0) + 1
    seqs = {w: list(w) for w in counts}
    merges = []
    for _ in range(n):
        pairs = {}
        for w, s in seqs.items():
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + counts[w]
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], [-ord(c) for c in kv[0][0] + " " + kv[0][1]]))[0]
        merges.append(best)
        for w, s in seqs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    return merges


def bpe_encode(text, vocab, ranks, added):
    """HF semantics: split around added tokens, pre-split, BPE by merge rank."""
    ids = []
    pattern = "(" + "|".join(re.escape(t) for t in added) + ")"
    for piece in re.split(pattern, text):
        if not piece:
            continue
        if piece in added:
            ids.append(added[piece])
            continue
        for w in words(piece):
            s = list(w)
            while len(s) > 1:
                cand = [(ranks.get((a, b), math.inf), i) for i, (a, b) in enumerate(zip(s, s[1:]))]
                r, i = min(cand)
                if r == math.inf:
                    break
                s = s[:i] + [s[i] + s[i + 1]] + s[i + 2:]
            ids.extend(vocab[t] for t in s)
    return ids


# ---------------------------------------------------------------------------------------------
# Model

def bf16(t):
    return t.to(torch.bfloat16).to(DT)


def main():
    merges = learn_merges(CORPUS, NUM_MERGES)
    vocab = {}
    for _, sym in BYTE_SYMBOLS:
        vocab[sym] = len(vocab)
    for a, b in merges:
        if a + b not in vocab:  # two merges can make the same string
            vocab[a + b] = len(vocab)
    bpe_size = len(vocab)
    added = {t: bpe_size + i for i, t in enumerate(SPECIALS)}
    EOT, IM_START, IM_END = (added[t] for t in SPECIALS)
    ranks = {m: i for i, m in enumerate(merges)}

    CFG = {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": EOT,
        "eos_token_id": EOT,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 1024,
        "max_window_layers": 2,
        "model_type": "qwen2",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 1024,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.40.1",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 448,  # padded past the tokenizer's ids, as Qwen2's 151936
    }
    assert CFG["vocab_size"] > max(added.values())
    V, D, F, L = CFG["vocab_size"], CFG["hidden_size"], CFG["intermediate_size"], CFG["num_hidden_layers"]
    H, HKV = CFG["num_attention_heads"], CFG["num_key_value_heads"]
    DH = D // H
    SHAPES = {"q_proj": (H * DH, D), "k_proj": (HKV * DH, D), "v_proj": (HKV * DH, D), "o_proj": (D, H * DH),
              "gate_proj": (F, D), "up_proj": (F, D), "down_proj": (D, F)}
    MODULES = list(SHAPES)

    def group(m):
        return "self_attn" if m in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"

    g = torch.Generator().manual_seed(2026)

    def rnd(*shape, std=0.2):
        return bf16(torch.randn(*shape, generator=g, dtype=DT) * std)

    W = {"model.embed_tokens.weight": rnd(V, D, std=0.5)}
    for l in range(L):
        W[f"model.layers.{l}.input_layernorm.weight"] = bf16(1 + 0.1 * torch.randn(D, generator=g, dtype=DT))
        for m in MODULES:
            W[f"model.layers.{l}.{group(m)}.{m}.weight"] = rnd(*SHAPES[m])
            if m in ("q_proj", "k_proj", "v_proj"):
                W[f"model.layers.{l}.{group(m)}.{m}.bias"] = rnd(SHAPES[m][0], std=0.1)
        W[f"model.layers.{l}.post_attention_layernorm.weight"] = bf16(1 + 0.1 * torch.randn(D, generator=g, dtype=DT))
    W["model.norm.weight"] = bf16(1 + 0.1 * torch.randn(D, generator=g, dtype=DT))

    def forward(ids):
        T = len(ids)
        pos = torch.arange(T, dtype=DT)

        def rmsnorm(x, w):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + CFG["rms_norm_eps"]) * w

        def rope(x):  # [T, heads, DH]
            inv = 1.0 / (CFG["rope_theta"] ** (torch.arange(0, DH, 2, dtype=DT) / DH))
            fr = pos[:, None] * inv
            emb = torch.cat([fr, fr], -1)[:, None, :]
            x1, x2 = x[..., : DH // 2], x[..., DH // 2:]
            return x * emb.cos() + torch.cat([-x2, x1], -1) * emb.sin()

        def proj(x, l, m):
            base = f"model.layers.{l}.{group(m)}.{m}"
            y = x @ W[base + ".weight"].T
            return y + W[base + ".bias"] if base + ".bias" in W else y

        def attention(x, l):
            q = rope(proj(x, l, "q_proj").view(T, H, DH)).transpose(0, 1)
            k = rope(proj(x, l, "k_proj").view(T, HKV, DH)).transpose(0, 1).repeat_interleave(H // HKV, dim=0)
            v = proj(x, l, "v_proj").view(T, HKV, DH).transpose(0, 1).repeat_interleave(H // HKV, dim=0)
            s = q @ k.transpose(-1, -2) / math.sqrt(DH)
            s = s.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), float("-inf"))
            o = (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(T, H * DH)
            return proj(o, l, "o_proj")

        x = W["model.embed_tokens.weight"][torch.tensor(ids)]
        for l in range(L):
            x = x + attention(rmsnorm(x, W[f"model.layers.{l}.input_layernorm.weight"]), l)
            n = rmsnorm(x, W[f"model.layers.{l}.post_attention_layernorm.weight"])
            x = x + proj(torch.nn.functional.silu(proj(n, l, "gate_proj")) * proj(n, l, "up_proj"), l, "down_proj")
        return rmsnorm(x, W["model.norm.weight"]) @ W["model.embed_tokens.weight"].T  # tied head

    # --- files -----------------------------------------------------------------------------
    os.makedirs(MODEL_DIR, exist_ok=True)
    for f in os.listdir(MODEL_DIR):
        os.remove(os.path.join(MODEL_DIR, f))

    def dump(name, obj, **kw):
        with open(os.path.join(MODEL_DIR, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False, **kw)
            f.write("\n")

    dump("config.json", CFG, sort_keys=True)

    def shard_bytes(named):
        header = {"__metadata__": {"format": "pt"}}
        chunks, off = [], 0
        for name, t in named:
            b = t.to(torch.bfloat16).contiguous().view(torch.int16).numpy().astype("<i2").tobytes()
            header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
            chunks.append(b)
            off += len(b)
        h = json.dumps(header, separators=(",", ":")).encode("utf-8")
        h += b" " * ((8 - len(h) % 8) % 8)
        return struct.pack("<Q", len(h)) + h + b"".join(chunks), off

    names = sorted(W)
    first = [n for n in names if n == "model.embed_tokens.weight" or n.startswith("model.layers.0.")]
    second = [n for n in names if n not in first]
    weight_map, total = {}, 0
    for i, part in enumerate([first, second]):
        fname = f"model-0000{i + 1}-of-00002.safetensors"
        data, size = shard_bytes([(n, W[n]) for n in part])
        total += size
        with open(os.path.join(MODEL_DIR, fname), "wb") as f:
            f.write(data)
        for n in part:
            weight_map[n] = fname
    dump("model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    added_tokens = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
                    for t, i in added.items()]
    dump("tokenizer.json", {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added_tokens,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated", "invert": False},
            byte_level,
        ]},
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
            "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges],
        },
    })
    chat_template = (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    dump("tokenizer_config.json", {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in added_tokens},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": chat_template,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": None,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    })
    dump("generation_config.json", {
        "bos_token_id": EOT,
        "do_sample": False,
        "eos_token_id": [IM_END, EOT],
        "max_new_tokens": 2048,
        "transformers_version": "4.40.1",
    })

    # --- expected ------------------------------------------------------------------------------
    texts = [
        "A customer bought these items, oldest first:\n1. red apple\n2. blue plum",
        "The next item the customer buys is: gold melon",
        "<|im_start|>user\nWhat's 42?<|im_end|>\n<|endoftext|>",
    ]
    encoded = [{"text": t, "ids": bpe_encode(t, vocab, ranks, added)} for t in texts]
    seqs = [encoded[1]["ids"][:12], [IM_START] + encoded[0]["ids"][:6] + [IM_END, EOT], [V - 1, 0, 5]]

    def flat(t):
        return [float("%.10g" % v) for v in t.reshape(-1).tolist()]

    expected = {
        "generator": f"reference/hf_tiny_checkpoint.py, torch {torch.__version__}, float64 compute on bfloat16 weights",
        "vocab_size": V,
        "tokenizer_vocab_size": max(added.values()) + 1,
        "special": {"eos": EOT, "pad": EOT, "im_start": IM_START, "im_end": IM_END, "generation_eos": [IM_END, EOT]},
        "encoded": encoded,
        "sequences": [{"ids": s, "logits": flat(forward(s))} for s in seqs],
    }
    with open(os.path.join(OUT_DIR, "qwen2-tiny-hf-expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(MODEL_DIR, f)) for f in os.listdir(MODEL_DIR))
    print(f"wrote {os.path.normpath(MODEL_DIR)} ({size} bytes, {len(merges)} merges, tokenizer ids 0..{max(added.values())}, vocab_size {V})")


if __name__ == "__main__":
    main()
