import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { f16ToF32, f32ToBf16, f32ToF16, bf16ToF32, floatToHalfBits } from "./dtype.js";
import {
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  readSafetensorsCheckpoint,
  readSafetensorsHeader,
  readSafetensorsIndex,
  SafetensorsError,
  SafetensorsReader,
  writeSafetensors,
  writeSafetensorsCheckpoint,
} from "./safetensors.js";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures");
const REF = path.join(FIXTURES, "reference.safetensors");

interface Expected {
  metadata: Record<string, string>;
  tensors: Record<string, { dtype: string; shape: number[]; values: (number | string)[]; source_f32?: (number | string)[] }>;
}
/** The fixture writes non-finite values as "Infinity" / "-Infinity" / "NaN". */
const num = (v: number | string): number => Number(v);

let dir = "";
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "evorec-st-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function rand(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    out[i] = (s / 2 ** 31 - 0.5) * 4;
  }
  return out;
}

/** Build a raw safetensors file from a header (object or raw string) and a data buffer. */
function raw(header: unknown, data: Uint8Array, lenOverride?: bigint): Uint8Array {
  const h = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe("safetensors: reference fixture written by torch", () => {
  it("reads every tensor with the values torch reports (F32, F16, BF16, I64; unaligned F32)", async () => {
    const expected = JSON.parse(await readFile(path.join(FIXTURES, "reference.expected.json"), "utf8")) as Expected;
    const bytes = new Uint8Array(await readFile(REF));
    const fromFile = await readSafetensors(REF);
    const fromBytes = parseSafetensors(bytes, { file: REF });
    const reader = await SafetensorsReader.open(REF);
    try {
      assert.deepEqual(fromFile.metadata, expected.metadata);
      assert.deepEqual(reader.names(), Object.keys(expected.tensors));
      for (const [name, e] of Object.entries(expected.tensors)) {
        for (const got of [fromFile.tensors.get(name)!, fromBytes.tensors.get(name)!, await reader.read(name)]) {
          assert.equal(got.dtype, "F32");
          assert.deepEqual(got.shape, e.shape, name);
          assert.deepEqual(Array.from(got.data), e.values.map(num), name);
        }
        assert.equal(fromFile.dtypes.get(name), e.dtype);
      }
      // lm_head.weight starts at data offset 34 (not a multiple of 4): read through a copy.
      assert.equal(reader.entry("lm_head.weight").dataOffsets[0] % 4, 2);
    } finally {
      await reader.close();
    }
  });

  it("our F16/BF16 conversions produce torch's bits from the same float32 sources", async () => {
    const expected = JSON.parse(await readFile(path.join(FIXTURES, "reference.expected.json"), "utf8")) as Expected;
    const ref = parseSafetensors(new Uint8Array(await readFile(REF)));
    let checked = 0;
    for (const [name, e] of Object.entries(expected.tensors)) {
      if (!e.source_f32 || (e.dtype !== "F16" && e.dtype !== "BF16")) continue;
      const src = Float32Array.from(e.source_f32.map(num));
      const bits = e.dtype === "F16" ? f32ToF16(src) : f32ToBf16(src);
      const back = e.dtype === "F16" ? f16ToF32(bits) : bf16ToF32(bits);
      assert.deepEqual(Array.from(back), Array.from(ref.tensors.get(name)!.data), name);
      // and through the writer
      const enc = encodeSafetensors({ [name]: { shape: e.shape, data: src } }, { dtype: e.dtype as "F16" | "BF16" });
      const p = parseSafetensors(enc);
      assert.equal(p.dtypes.get(name), e.dtype);
      assert.deepEqual(Array.from(p.tensors.get(name)!.data), e.values.map(num), name);
      checked++;
    }
    assert.ok(checked >= 5);
  });
});

describe("safetensors: dtype conversions", () => {
  it("F16 conversion round-trips every finite half exactly and handles Inf/NaN", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const f = f16ToF32(all);
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) assert.ok(Number.isNaN(f[h]));
      else assert.equal(floatToHalfBits(f[h]), h, `half 0x${h.toString(16)}`);
    }
    assert.ok(Number.isNaN(f16ToF32(f32ToF16([NaN]))[0]));
    assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(new Float32Array([NaN])))[0]));
    assert.deepEqual(Array.from(f16ToF32(f32ToF16([1e6, -1e6, 1e-9]))), [Infinity, -Infinity, 0]);
  });
});

describe("safetensors: writer", () => {
  it("round-trips F32 exactly, pads the header to 8 bytes, keeps metadata, views aligned F32 without copying", async () => {
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>([
      ["b.weight", { shape: [3, 5], data: rand(15, 3) }],
      ["a.bias", { shape: [7], data: rand(7, 4) }],
      ["scalar", { shape: [], data: new Float32Array([2.5]) }],
      ["empty", { shape: [0], data: new Float32Array(0) }],
    ]);
    const file = path.join(dir, "rt.safetensors");
    await writeSafetensors(file, tensors, { metadata: { format: "pt", note: "évo" } });
    const bytes = new Uint8Array(await readFile(file));
    const hlen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    assert.equal((8 + hlen) % 8, 0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen)));
    assert.deepEqual(header.__metadata__, { format: "pt", note: "évo" });
    assert.deepEqual(header["a.bias"], { dtype: "F32", shape: [7], data_offsets: [0, 28] });
    const r = await readSafetensors(file);
    for (const [n, t] of tensors) {
      assert.deepEqual(r.tensors.get(n)!.shape, t.shape);
      assert.deepEqual(r.tensors.get(n)!.data, t.data);
    }
    const p = parseSafetensors(bytes);
    assert.equal(p.tensors.get("a.bias")!.data.buffer, bytes.buffer);
    assert.notEqual(parseSafetensors(bytes, { copy: true }).tensors.get("a.bias")!.data.buffer, bytes.buffer);
    assert.deepEqual((await readSafetensorsHeader(file)).metadata, { format: "pt", note: "évo" });
    assert.deepEqual([...(await readSafetensors(file, { names: ["scalar"] })).tensors.keys()], ["scalar"]);
    assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith(".tmp")), []);
  });

  it("writes F16/BF16 (per tensor) and orders wider dtypes first", () => {
    const data = rand(10, 9);
    const enc = encodeSafetensors(
      { h: { shape: [10], data }, b: { shape: [2, 5], data }, f: { shape: [10], data } },
      { dtype: (n) => (n === "h" ? "F16" : n === "b" ? "BF16" : "F32") },
    );
    const p = parseSafetensors(enc);
    assert.deepEqual([...p.dtypes.entries()], [["f", "F32"], ["b", "BF16"], ["h", "F16"]]);
    for (let i = 0; i < 10; i++) {
      assert.ok(Math.abs(p.tensors.get("h")!.data[i] - data[i]) <= 2e-3);
      assert.ok(Math.abs(p.tensors.get("b")!.data[i] - data[i]) <= 2e-2);
    }
  });

  it("rejects bad tensors, naming the tensor, and leaves an existing file untouched", async () => {
    const file = path.join(dir, "keep.safetensors");
    await writeSafetensors(file, { x: { shape: [1], data: new Float32Array([1]) } });
    const before = await readFile(file);
    await assert.rejects(writeSafetensors(file, { w: { shape: [2, 2], data: new Float32Array(3) } }), (e: Error) => {
      assert.ok(e instanceof SafetensorsError);
      assert.match(e.message, /keep\.safetensors: tensor "w": shape\/size mismatch/);
      return true;
    });
    assert.throws(() => encodeSafetensors({ __metadata__: { shape: [0], data: [] } }), /reserved/);
    assert.deepEqual(await readFile(file), before);
  });

  it("reads a 32 MB tensor", async () => {
    const big = rand(8 * 1024 * 1024, 5);
    const file = path.join(dir, "big.safetensors");
    await writeSafetensors(file, { big: { shape: [8192, 1024], data: big } });
    const t0 = performance.now();
    const r = await readSafetensors(file);
    const ms = performance.now() - t0;
    assert.deepEqual(r.tensors.get("big")!.data, big);
    assert.ok(ms < 5000, `${ms} ms`);
    await rm(file);
  });
});

describe("safetensors: sharded checkpoints", () => {
  it("shards above the size limit with an index, reads it back, and un-shards", async () => {
    const ck = path.join(dir, "ck");
    const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (let i = 0; i < 5; i++) tensors[`model.layers.${i}.mlp.up_proj.weight`] = { shape: [10, 10], data: rand(100, i + 1) };
    tensors["lm_head.weight"] = { shape: [30, 10], data: rand(300, 99) }; // 1200 bytes > limit: own shard
    const files = await writeSafetensorsCheckpoint(ck, tensors, { maxShardBytes: 1000, metadata: { format: "pt" } });
    assert.deepEqual(files, [
      "model-00001-of-00004.safetensors",
      "model-00002-of-00004.safetensors",
      "model-00003-of-00004.safetensors",
      "model-00004-of-00004.safetensors",
      "model.safetensors.index.json",
    ]);
    const index = await readSafetensorsIndex(path.join(ck, "model.safetensors.index.json"));
    assert.equal(index.metadata.total_size, 5 * 400 + 1200);
    assert.equal(index.weight_map["lm_head.weight"], "model-00004-of-00004.safetensors");
    assert.equal(index.weight_map["model.layers.0.mlp.up_proj.weight"], "model-00001-of-00004.safetensors");
    const r = await readSafetensorsCheckpoint(ck);
    assert.equal(r.tensors.size, 6);
    for (const [n, t] of Object.entries(tensors)) assert.deepEqual(r.tensors.get(n)!.data, t.data, n);
    assert.deepEqual(r.metadata, { format: "pt" });
    const sel = await readSafetensorsCheckpoint(ck, { names: ["lm_head.weight"] });
    assert.deepEqual([...sel.tensors.keys()], ["lm_head.weight"]);

    const files2 = await writeSafetensorsCheckpoint(ck, tensors);
    assert.deepEqual(files2, ["model.safetensors"]);
    assert.deepEqual((await readdir(ck)).sort(), ["model.safetensors"]);
    assert.equal((await readSafetensorsCheckpoint(ck)).tensors.size, 6);
  });

  it("names the index, shard and tensor when a sharded checkpoint is broken", async () => {
    const ck = path.join(dir, "broken");
    await writeSafetensorsCheckpoint(ck, { a: { shape: [300], data: rand(300) }, b: { shape: [300], data: rand(300) } }, { maxShardBytes: 1500 });
    const idx = path.join(ck, "model.safetensors.index.json");
    const index = JSON.parse(await readFile(idx, "utf8"));
    index.weight_map.c = "model-00001-of-00002.safetensors";
    await writeFile(idx, JSON.stringify(index));
    await assert.rejects(readSafetensorsCheckpoint(ck), /model-00001-of-00002\.safetensors: tensor "c": listed in model\.safetensors\.index\.json but missing/);
    index.weight_map.c = "model-00009-of-00009.safetensors";
    await writeFile(idx, JSON.stringify(index));
    await assert.rejects(readSafetensorsCheckpoint(ck), /index\.json: tensor "c": shard "model-00009-of-00009\.safetensors" listed in weight_map does not exist/);
    await writeFile(idx, JSON.stringify({ metadata: {} }));
    await assert.rejects(readSafetensorsCheckpoint(ck), /index\.json: field "weight_map" is missing/);
    await writeFile(idx, JSON.stringify({ weight_map: { a: "../x.safetensors" } }));
    await assert.rejects(readSafetensorsCheckpoint(ck), /must be a file inside/);
    await assert.rejects(readSafetensorsCheckpoint(path.join(dir, "nothing-here")), /no model\.safetensors/);
  });
});

describe("safetensors: malformed input errors name the file and tensor", () => {
  const ok = { dtype: "F32", shape: [2], data_offsets: [0, 8] };
  const cases: [string, Uint8Array, RegExp][] = [
    ["short", new Uint8Array(5), /short\.safetensors: file too short/],
    ["hugelen", raw({}, new Uint8Array(0), 10n ** 12n), /hugelen\.safetensors: bad header length/],
    ["pastend", raw({ w: ok }, new Uint8Array(8), 4000n), /pastend\.safetensors: bad header length 4000/],
    ["badjson", raw("{not json", new Uint8Array(0)), /badjson\.safetensors: header is not valid JSON/],
    ["notobj", raw("[1,2]", new Uint8Array(0)), /notobj\.safetensors: header must be a JSON object/],
    ["dtype", raw({ w: { ...ok, dtype: "F12" } }, new Uint8Array(8)), /dtype\.safetensors: tensor "w": unknown dtype "F12"/],
    ["range", raw({ w: { ...ok, data_offsets: [0, 16] } }, new Uint8Array(8)), /range\.safetensors: tensor "w": data_offsets \[0, 16\] out of range/],
    ["reversed", raw({ w: { ...ok, data_offsets: [8, 0] } }, new Uint8Array(8)), /tensor "w": data_offsets \[8, 0\] out of range/],
    ["size", raw({ w: { ...ok, shape: [3] } }, new Uint8Array(8)), /size\.safetensors: tensor "w": shape\/size mismatch: F32\[3\] needs 12 bytes but data_offsets span 8/],
    ["shape", raw({ w: { ...ok, shape: [-2] } }, new Uint8Array(8)), /tensor "w": shape must be/],
    ["overlap", raw({ w: ok, v: { ...ok, data_offsets: [4, 12] } }, new Uint8Array(12)), /tensor "v": data_offsets overlap/],
    ["hole", raw({ w: ok, v: { ...ok, data_offsets: [12, 20] } }, new Uint8Array(20)), /tensor "v": hole in the data buffer/],
    ["trailing", raw({ w: ok }, new Uint8Array(12)), /trailing\.safetensors: data buffer has 4 trailing bytes/],
    ["meta", raw({ __metadata__: { a: 1 }, w: ok }, new Uint8Array(8)), /__metadata__\["a"\] must be a string/],
    ["f8", raw({ w: { dtype: "F8_E4M3", shape: [8], data_offsets: [0, 8] } }, new Uint8Array(8)), /f8\.safetensors: tensor "w": dtype F8_E4M3 is not supported/],
  ];
  for (const [name, bytes, re] of cases) {
    it(name, async () => {
      const file = path.join(dir, `${name}.safetensors`);
      await writeFile(file, bytes);
      await assert.rejects(readSafetensors(file), (e: Error) => {
        assert.ok(e instanceof SafetensorsError, String(e));
        assert.match(e.message, re);
        return true;
      });
      assert.throws(() => parseSafetensors(bytes, { file }), re);
    });
  }
  it("missing requested tensor", async () => {
    await assert.rejects(readSafetensors(REF, { names: ["nope"] }), /reference\.safetensors: tensor "nope": not found/);
  });
});
