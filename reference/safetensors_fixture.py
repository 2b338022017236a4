#!/usr/bin/env python3
"""Reference safetensors fixture for evorec's reader (src/io/safetensors.ts).

Writes src/io/fixtures/reference.safetensors by hand from the format spec
(https://github.com/huggingface/safetensors: u64-LE header length, JSON header, data buffer),
with tensor bytes taken from torch (F32, F16, BF16, I64), and the float32 values torch gets
from each stored tensor (tensor.float().tolist()) in reference.expected.json. The `safetensors`
Python package is not needed.

The data layout deliberately puts an F16 tensor with an odd element count before an F32 tensor,
so the F32 tensor starts at a byte offset that is not a multiple of 4 (legal in the format;
exercises the unaligned read path).

Usage (Debian's torch):
  /usr/bin/python3 reference/safetensors_fixture.py            # write the fixture
  /usr/bin/python3 reference/safetensors_fixture.py --check F.safetensors F.expected.json
      # read a file written by evorec with torch and compare with the expected values
"""
import json
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "..", "src", "io", "fixtures")

DTYPES = {
    "F32": (torch.float32, None),
    "F16": (torch.float16, torch.int16),
    "BF16": (torch.bfloat16, torch.int16),
    "I64": (torch.int64, None),
}
TORCH_TO_ST = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        # numpy has no bfloat16: reinterpret the 16-bit patterns as int16
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    if t.dtype == torch.float32:
        return t.numpy().astype("<f4").tobytes()
    if t.dtype == torch.int64:
        return t.numpy().astype("<i8").tobytes()
    raise ValueError(t.dtype)


def write_safetensors(path, named, metadata):
    header = {"__metadata__": metadata}
    chunks = []
    off = 0
    for name, t in named:
        b = tensor_bytes(t)
        header[name] = {"dtype": TORCH_TO_ST[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)  # pad so the data buffer starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        buf = bytearray(data[b:end])
        dt = e["dtype"]
        if dt == "F32":
            t = torch.frombuffer(buf, dtype=torch.float32) if buf else torch.zeros(0)
        elif dt in ("F16", "BF16"):
            t = (torch.frombuffer(buf, dtype=torch.int16) if buf else torch.zeros(0, dtype=torch.int16)).view(DTYPES[dt][0])
        elif dt == "I64":
            t = torch.frombuffer(buf, dtype=torch.int64) if buf else torch.zeros(0, dtype=torch.int64)
        else:
            raise ValueError(dt)
        out[name] = (dt, t.reshape(e["shape"]).float())
    return header.get("__metadata__", {}), out


def enc_value(v):
    """JSON has no Infinity/NaN: write them as the strings "Infinity", "-Infinity", "NaN"."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def dec_value(v):
    return float(v.replace("Infinity", "inf").replace("NaN", "nan")) if isinstance(v, str) else float(v)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        meta, tensors = read_safetensors(sys.argv[2])
        with open(sys.argv[3]) as f:
            expected = json.load(f)
        bad = 0
        for name, e in expected["tensors"].items():
            dt, t = tensors[name]
            ok = dt == e["dtype"] and list(t.shape) == e["shape"] and t.flatten().tolist() == [dec_value(v) for v in e["values"]]
            print(("ok  " if ok else "BAD ") + name, dt, list(t.shape))
            bad += not ok
        print("metadata", meta)
        sys.exit(1 if bad else 0)

    g = torch.Generator().manual_seed(0)
    f32 = torch.float32
    sources = [  # (name, float32 source tensor, stored dtype)
        ("model.layers.0.self_attn.q_proj.weight", torch.randn(3, 4, generator=g, dtype=f32), torch.bfloat16),
        ("model.norm.weight", torch.tensor([1.0, 1 / 3, -2.5, 65504.0, 6e-8], dtype=f32), torch.float16),  # odd count: 10 bytes
        ("lm_head.weight", torch.randn(2, 3, generator=g, dtype=f32), f32),  # starts at an offset not divisible by 4
        ("bf16.special", torch.tensor([0.0, -1e20, 3.140625, 1e-3, float("inf"), -float("inf")], dtype=f32), torch.bfloat16),
        ("f16.subnormal_and_round", torch.tensor([[1e-5, -3e-7], [0.1, 2049.0]], dtype=f32), torch.float16),
        ("f16.overflow_and_ties", torch.tensor([70000.0, -65520.0, 1.0 + 2**-11, 1.0 + 3 * 2**-11], dtype=f32), torch.float16),
        ("bf16.ties", torch.tensor([1.0 + 2**-8, 1.0 + 3 * 2**-8, -(2**-130)], dtype=f32), torch.bfloat16),
        ("scalar.f32", torch.tensor(0.15625, dtype=f32), f32),
        ("empty.f16", torch.zeros(0, 4, dtype=f32), torch.float16),
        ("position_ids", None, torch.int64),
    ]
    named = []
    for name, src, dt in sources:
        named.append((name, torch.tensor([0, 1, 2, -7], dtype=dt) if src is None else src.to(dt)))
    source_f32 = {name: src.flatten().tolist() for name, src, _ in sources if src is not None}
    metadata = {"format": "pt", "source": "reference/safetensors_fixture.py", "torch": torch.__version__.split("+")[0]}
    os.makedirs(OUT_DIR, exist_ok=True)
    write_safetensors(os.path.join(OUT_DIR, "reference.safetensors"), named, metadata)
    expected = {
        "metadata": metadata,
        "tensors": {
            name: {"dtype": TORCH_TO_ST[t.dtype], "shape": list(t.shape), "values": [enc_value(v) for v in t.float().flatten().tolist()],
                   **({"source_f32": [enc_value(v) for v in source_f32[name]]} if name in source_f32 else {})}
            for name, t in named
        },
    }
    with open(os.path.join(OUT_DIR, "reference.expected.json"), "w") as f:
        json.dump(expected, f, indent=1, allow_nan=False)
        f.write("\n")
    print("wrote", os.path.normpath(OUT_DIR))


if __name__ == "__main__":
    main()
