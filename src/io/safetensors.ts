/**
 * safetensors reader/writer (https://github.com/huggingface/safetensors, format v0.x):
 *
 *   [8 bytes: N, little-endian u64][N bytes: UTF-8 JSON header][data buffer]
 *
 * The header maps tensor names to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to
 * the data buffer) plus an optional `__metadata__` string->string map. The data buffer must be
 * fully covered by the tensors, without holes or overlaps. Writers pad the header with spaces so
 * that the data buffer starts at an 8-byte aligned offset.
 *
 * Tensors are returned as plain records `{ dtype: "F32", shape, data: Float32Array }`: F32 is read
 * as is, F16/BF16/F64 and integer dtypes are converted to F32. Writing supports F32, F16 and BF16.
 * Sharded checkpoints (`model.safetensors.index.json` + `model-0000i-of-0000n.safetensors`) are
 * read and written; every write goes to a temp file renamed into place.
 */

import { promises as fs } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { writeFileAtomic, writeJsonAtomic } from "./atomic.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./dtype.js";
import { parseJsonText, shownValue } from "./json.js";

/** dtypes of the safetensors format and their sizes in bytes. */
export const SAFETENSORS_DTYPE_SIZE = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
} as const;
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_SIZE;
/** dtypes this module can write. */
export type WritableDtype = "F32" | "F16" | "BF16";
/** dtypes read and converted to F32 (F8 formats are recognised but not supported). */
export const READABLE_DTYPES: readonly SafetensorsDtype[] = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL"];

/** A tensor as used across evorec's IO: row-major F32 data. */
export interface F32Tensor {
  dtype: "F32";
  shape: number[];
  data: Float32Array;
}

/** Anything with a shape and F32-convertible data can be written. */
export interface TensorLike {
  shape: readonly number[];
  data: Float32Array | ArrayLike<number>;
}

export type TensorMap<T = TensorLike> = ReadonlyMap<string, T> | Readonly<Record<string, T>>;

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) relative to the data buffer. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** `__metadata__` (string -> string), {} when absent. */
  metadata: Record<string, string>;
  /** Entries in header order. */
  entries: SafetensorsEntry[];
  /** Absolute file offset of the data buffer (8 + header length). */
  dataStart: number;
  /** Length of the data buffer in bytes. */
  dataLength: number;
}

/** Malformed or unsupported safetensors input; names the file and, when relevant, the tensor. */
export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    message: string,
    readonly tensor?: string,
  ) {
    super(`${file}${tensor !== undefined ? `: tensor "${tensor}"` : ""}: ${message}`);
    this.name = "SafetensorsError";
  }
}

/** The format's limit on the header size (100 MB), as in the reference implementation. */
export const MAX_HEADER_BYTES = 100_000_000;

const LITTLE_ENDIAN = os.endianness() === "LE";

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Parse and validate a header given its JSON text and the data buffer length. */
export function parseSafetensorsHeader(
  json: string,
  headerLength: number,
  dataLength: number,
  file = "<memory>",
): SafetensorsHeader {
  const raw = parseJsonText(json, file, (m) => new SafetensorsError(file, m.replace(/^invalid JSON/, "header is not valid JSON")));
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new SafetensorsError(file, "header must be a JSON object");
  }
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (v === null || typeof v !== "object" || Array.isArray(v)) {
        throw new SafetensorsError(file, "__metadata__ must be an object of strings");
      }
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== "string") throw new SafetensorsError(file, `__metadata__["${k}"] must be a string, got ${typeof s}`);
        metadata[k] = s;
      }
      continue;
    }
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      throw new SafetensorsError(file, "header entry must be an object {dtype, shape, data_offsets}", name);
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e.dtype !== "string" || !(e.dtype in SAFETENSORS_DTYPE_SIZE)) {
      throw new SafetensorsError(file, `unknown dtype ${shownValue(e.dtype)}`, name);
    }
    const dtype = e.dtype as SafetensorsDtype;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(file, `shape must be an array of non-negative integers, got ${shownValue(e.shape)}`, name);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isSafeInteger(x) && x >= 0)) {
      throw new SafetensorsError(file, `data_offsets must be [begin, end] non-negative integers, got ${shownValue(off)}`, name);
    }
    const [begin, end] = off as [number, number];
    if (begin > end || end > dataLength) {
      throw new SafetensorsError(
        file,
        `data_offsets [${begin}, ${end}] out of range (data buffer is ${dataLength} bytes after a ${headerLength}-byte header)`,
        name,
      );
    }
    const shape = e.shape as number[];
    const expected = numel(shape) * SAFETENSORS_DTYPE_SIZE[dtype];
    if (end - begin !== expected) {
      throw new SafetensorsError(
        file,
        `shape/size mismatch: ${dtype}[${shape.join(", ")}] needs ${expected} bytes but data_offsets span ${end - begin}`,
        name,
      );
    }
    entries.push({ name, dtype, shape: [...shape], dataOffsets: [begin, end] });
  }
  // The data buffer must be covered exactly: no overlaps, no holes (as the reference checks).
  const sorted = [...entries].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let pos = 0;
  for (const e of sorted) {
    if (e.dataOffsets[0] < pos) throw new SafetensorsError(file, `data_offsets overlap the previous tensor (starts at ${e.dataOffsets[0]} < ${pos})`, e.name);
    if (e.dataOffsets[0] > pos) throw new SafetensorsError(file, `hole in the data buffer before this tensor (bytes ${pos}..${e.dataOffsets[0]})`, e.name);
    pos = e.dataOffsets[1];
  }
  if (pos !== dataLength) {
    throw new SafetensorsError(file, `data buffer has ${dataLength - pos} trailing bytes not covered by any tensor`);
  }
  return { metadata, entries, dataStart: 8 + headerLength, dataLength };
}

function readHeaderLength(prefix: Uint8Array, total: number, file: string): number {
  if (total < 8) throw new SafetensorsError(file, `file too short (${total} bytes) for the 8-byte header length`);
  const dv = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(file, `bad header length ${n} (limit ${MAX_HEADER_BYTES})`);
  const len = Number(n);
  if (8 + len > total) throw new SafetensorsError(file, `bad header length ${len}: file has only ${total - 8} bytes after the length`);
  return len;
}

/** Convert raw bytes of one tensor to F32. `bytes` may be unaligned; it is copied only when needed. */
function toF32(bytes: Uint8Array, dtype: SafetensorsDtype, file: string, name: string, copy: boolean): Float32Array {
  const size = SAFETENSORS_DTYPE_SIZE[dtype];
  const n = bytes.byteLength / size;
  const aligned = bytes.byteOffset % size === 0;
  // A typed view over `bytes` (copying first when unaligned).
  const view = <T>(C: new (b: ArrayBufferLike, o: number, l: number) => T): T => {
    if (aligned) return new C(bytes.buffer, bytes.byteOffset, n);
    const c = new Uint8Array(bytes.byteLength);
    c.set(bytes);
    return new C(c.buffer, 0, n);
  };
  if (!LITTLE_ENDIAN && size > 1) throw new SafetensorsError(file, "big-endian hosts are not supported", name);
  switch (dtype) {
    case "F32": {
      if (aligned && !copy) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
      const out = new Float32Array(n);
      new Uint8Array(out.buffer).set(bytes);
      return out;
    }
    case "F16":
      return f16ToF32(view(Uint16Array));
    case "BF16":
      return bf16ToF32(view(Uint16Array));
    case "F64":
      return Float32Array.from(view(Float64Array));
    case "I32":
      return Float32Array.from(view(Int32Array));
    case "U32":
      return Float32Array.from(view(Uint32Array));
    case "I16":
      return Float32Array.from(view(Int16Array));
    case "U16":
      return Float32Array.from(view(Uint16Array));
    case "I8":
      return Float32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, n));
    case "U8":
    case "BOOL":
      return Float32Array.from(new Uint8Array(bytes.buffer, bytes.byteOffset, n));
    case "I64": {
      const v = view(BigInt64Array);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(v[i]);
      return out;
    }
    case "U64": {
      const v = view(BigUint64Array);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(v[i]);
      return out;
    }
    default:
      throw new SafetensorsError(file, `dtype ${dtype} is not supported for reading`, name);
  }
}

export interface ParsedSafetensors {
  metadata: Record<string, string>;
  /** Tensors in header order, converted to F32. */
  tensors: Map<string, F32Tensor>;
  /** Original dtype of each tensor. */
  dtypes: Map<string, SafetensorsDtype>;
}

export type NameFilter = readonly string[] | ((name: string) => boolean);
function wants(filter: NameFilter | undefined, name: string): boolean {
  if (!filter) return true;
  return typeof filter === "function" ? filter(name) : filter.includes(name);
}

/**
 * Parse a whole safetensors file held in memory. F32 tensors whose bytes are 4-byte aligned in
 * `bytes` are zero-copy views into it (pass `copy: true` to detach them).
 */
export function parseSafetensors(
  bytes: Uint8Array,
  opts: { file?: string; names?: NameFilter; copy?: boolean } = {},
): ParsedSafetensors {
  const file = opts.file ?? "<memory>";
  const hlen = readHeaderLength(bytes, bytes.byteLength, file);
  const json = new TextDecoder().decode(bytes.subarray(8, 8 + hlen));
  const header = parseSafetensorsHeader(json, hlen, bytes.byteLength - 8 - hlen, file);
  const out: ParsedSafetensors = { metadata: header.metadata, tensors: new Map(), dtypes: new Map() };
  for (const e of header.entries) {
    if (!wants(opts.names, e.name)) continue;
    const b = bytes.subarray(header.dataStart + e.dataOffsets[0], header.dataStart + e.dataOffsets[1]);
    out.tensors.set(e.name, { dtype: "F32", shape: e.shape, data: toF32(b, e.dtype, file, e.name, opts.copy ?? false) });
    out.dtypes.set(e.name, e.dtype);
  }
  checkNamesFound(opts.names, out.tensors, file);
  return out;
}

function checkNamesFound(filter: NameFilter | undefined, got: ReadonlyMap<string, unknown>, file: string): void {
  if (Array.isArray(filter)) {
    for (const n of filter as readonly string[]) if (!got.has(n)) throw new SafetensorsError(file, "not found in this file", n);
  }
}

/**
 * Random access to a safetensors file on disk: reads the header on open, then each tensor's
 * bytes straight into its own buffer (one read, no extra copy for F32).
 */
export class SafetensorsReader {
  private constructor(
    readonly file: string,
    private readonly fh: fs.FileHandle,
    readonly header: SafetensorsHeader,
    private readonly byName: Map<string, SafetensorsEntry>,
  ) {}

  static async open(file: string): Promise<SafetensorsReader> {
    const fh = await fs.open(file, "r");
    try {
      const { size } = await fh.stat();
      const prefix = new Uint8Array(8);
      if (size >= 8) await readExactly(fh, prefix, 0, file);
      const hlen = readHeaderLength(prefix, size, file);
      const hbuf = new Uint8Array(hlen);
      await readExactly(fh, hbuf, 8, file);
      const header = parseSafetensorsHeader(new TextDecoder().decode(hbuf), hlen, size - 8 - hlen, file);
      return new SafetensorsReader(file, fh, header, new Map(header.entries.map((e) => [e.name, e])));
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  names(): string[] {
    return this.header.entries.map((e) => e.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): SafetensorsEntry {
    const e = this.byName.get(name);
    if (!e) throw new SafetensorsError(this.file, "not found in this file", name);
    return e;
  }

  /** Read one tensor, converted to F32. */
  async read(name: string): Promise<F32Tensor> {
    const e = this.entry(name);
    const len = e.dataOffsets[1] - e.dataOffsets[0];
    const pos = this.header.dataStart + e.dataOffsets[0];
    let data: Float32Array;
    if (e.dtype === "F32") {
      data = new Float32Array(len / 4);
      await readExactly(this.fh, new Uint8Array(data.buffer), pos, this.file, name);
    } else {
      const size = SAFETENSORS_DTYPE_SIZE[e.dtype];
      const raw = new Uint8Array(new ArrayBuffer(Math.ceil(len / 8) * 8 || 8), 0, len);
      await readExactly(this.fh, raw, pos, this.file, name);
      data = toF32(raw, e.dtype, this.file, name, false);
      void size;
    }
    return { dtype: "F32", shape: [...e.shape], data };
  }

  /** Read all tensors (or those passing `names`), in header order. */
  async readAll(names?: NameFilter): Promise<Map<string, F32Tensor>> {
    const out = new Map<string, F32Tensor>();
    for (const e of this.header.entries) if (wants(names, e.name)) out.set(e.name, await this.read(e.name));
    checkNamesFound(names, out, this.file);
    return out;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

async function readExactly(fh: fs.FileHandle, buf: Uint8Array, position: number, file: string, tensor?: string): Promise<void> {
  let off = 0;
  while (off < buf.byteLength) {
    const { bytesRead } = await fh.read(buf, off, buf.byteLength - off, position + off);
    if (bytesRead === 0) throw new SafetensorsError(file, `unexpected end of file at byte ${position + off}`, tensor);
    off += bytesRead;
  }
}

/** Read a safetensors file (all tensors, or those selected by `names`), converted to F32. */
export async function readSafetensors(
  file: string,
  opts: { names?: NameFilter } = {},
): Promise<{ metadata: Record<string, string>; tensors: Map<string, F32Tensor>; dtypes: Map<string, SafetensorsDtype> }> {
  const r = await SafetensorsReader.open(file);
  try {
    const tensors = await r.readAll(opts.names);
    const dtypes = new Map([...tensors.keys()].map((n) => [n, r.entry(n).dtype] as const));
    return { metadata: r.metadata, tensors, dtypes };
  } finally {
    await r.close();
  }
}

/** Read only the header of a safetensors file. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const r = await SafetensorsReader.open(file);
  await r.close();
  return r.header;
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface WriteSafetensorsOptions {
  /** `__metadata__` entries (strings). */
  metadata?: Record<string, string>;
  /** Storage dtype, for all tensors or per tensor name. Default F32. */
  dtype?: WritableDtype | ((name: string) => WritableDtype);
}

function entriesOf<T>(tensors: TensorMap<T>): [string, T][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors as Record<string, T>);
}

function checkTensor(name: string, t: TensorLike, file: string): void {
  if (name === "__metadata__" || name.length === 0) throw new SafetensorsError(file, "reserved or empty tensor name", name);
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(file, `shape must be non-negative integers, got ${JSON.stringify(t.shape)}`, name);
  }
  if (numel(t.shape) !== t.data.length) {
    throw new SafetensorsError(file, `shape/size mismatch: shape [${t.shape.join(", ")}] has ${numel(t.shape)} elements, data has ${t.data.length}`, name);
  }
}

function encodeTensor(t: TensorLike, dtype: WritableDtype): Uint8Array {
  if (dtype === "F32") {
    const f = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
    return new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  }
  const h = dtype === "F16" ? f32ToF16(t.data) : f32ToBf16(t.data);
  return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
}

/**
 * Serialise tensors to safetensors bytes, as a list of chunks (header, then each tensor's bytes;
 * F32 data is not copied). Tensors are laid out by dtype size (F32 first) then name, so every
 * tensor is naturally aligned; the header is space-padded to a multiple of 8 bytes.
 */
export function serializeSafetensors(tensors: TensorMap, opts: WriteSafetensorsOptions = {}, file = "<memory>"): Uint8Array[] {
  const dtypeOf = (name: string): WritableDtype => (typeof opts.dtype === "function" ? opts.dtype(name) : (opts.dtype ?? "F32"));
  const list = entriesOf(tensors).map(([name, t]) => {
    checkTensor(name, t, file);
    const dtype = dtypeOf(name);
    if (!(dtype === "F32" || dtype === "F16" || dtype === "BF16")) throw new SafetensorsError(file, `cannot write dtype ${String(dtype)}`, name);
    return { name, t, dtype };
  });
  list.sort((a, b) => SAFETENSORS_DTYPE_SIZE[b.dtype] - SAFETENSORS_DTYPE_SIZE[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (opts.metadata && Object.keys(opts.metadata).length > 0) {
    for (const [k, v] of Object.entries(opts.metadata)) {
      if (typeof v !== "string") throw new SafetensorsError(file, `__metadata__["${k}"] must be a string`);
    }
    header.__metadata__ = opts.metadata;
  }
  const chunks: Uint8Array[] = [];
  let off = 0;
  for (const { name, t, dtype } of list) {
    const bytes = encodeTensor(t, dtype);
    header[name] = { dtype, shape: [...t.shape], data_offsets: [off, off + bytes.byteLength] };
    off += bytes.byteLength;
    chunks.push(bytes);
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  return [prefix, json, ...chunks];
}

/** Concatenate {@link serializeSafetensors} chunks into one buffer. */
export function encodeSafetensors(tensors: TensorMap, opts: WriteSafetensorsOptions = {}): Uint8Array {
  const chunks = serializeSafetensors(tensors, opts);
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.byteLength, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

/** Write a single safetensors file atomically (temp file + rename). */
export async function writeSafetensors(file: string, tensors: TensorMap, opts: WriteSafetensorsOptions = {}): Promise<void> {
  await writeFileAtomic(file, serializeSafetensors(tensors, opts, file));
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints

export const SAFETENSORS_WEIGHTS_NAME = "model.safetensors";
export const SAFETENSORS_INDEX_NAME = "model.safetensors.index.json";

export interface SafetensorsIndex {
  metadata: { total_size?: number; [k: string]: unknown };
  weight_map: Record<string, string>;
}

/** Read and validate a `*.safetensors.index.json`. */
export async function readSafetensorsIndex(indexFile: string): Promise<SafetensorsIndex> {
  const raw = parseJsonText(await fs.readFile(indexFile, "utf8"), indexFile, (m) => new SafetensorsError(indexFile, m));
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new SafetensorsError(indexFile, "index must be a JSON object");
  const r = raw as { metadata?: unknown; weight_map?: unknown };
  if (r.weight_map === null || typeof r.weight_map !== "object" || Array.isArray(r.weight_map)) {
    throw new SafetensorsError(indexFile, 'field "weight_map" is missing or not an object');
  }
  for (const [k, v] of Object.entries(r.weight_map as Record<string, unknown>)) {
    if (typeof v !== "string" || v.length === 0) throw new SafetensorsError(indexFile, `weight_map["${k}"] must be a file name`);
    if (path.isAbsolute(v) || v.split(/[\\/]/).includes("..")) {
      throw new SafetensorsError(indexFile, `weight_map["${k}"] = "${v}" must be a file inside the checkpoint folder`);
    }
  }
  const metadata = r.metadata && typeof r.metadata === "object" && !Array.isArray(r.metadata) ? (r.metadata as SafetensorsIndex["metadata"]) : {};
  return { metadata, weight_map: r.weight_map as Record<string, string> };
}

/**
 * Read the tensors of a sharded checkpoint through its index file (all tensors listed in
 * `weight_map`, or those selected by `names`). Shard metadata is merged (first shard wins).
 */
export async function readShardedSafetensors(
  indexFile: string,
  opts: { names?: NameFilter } = {},
): Promise<{ metadata: Record<string, string>; tensors: Map<string, F32Tensor>; index: SafetensorsIndex }> {
  const index = await readSafetensorsIndex(indexFile);
  const dir = path.dirname(indexFile);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(index.weight_map)) {
    if (!wants(opts.names, name)) continue;
    let l = byShard.get(shard);
    if (!l) byShard.set(shard, (l = []));
    l.push(name);
  }
  if (Array.isArray(opts.names)) {
    for (const n of opts.names as readonly string[]) if (!(n in index.weight_map)) throw new SafetensorsError(indexFile, "not in weight_map", n);
  }
  const tensors = new Map<string, F32Tensor>();
  const metadata: Record<string, string> = {};
  for (const [shard, names] of byShard) {
    const file = path.join(dir, shard);
    let r: SafetensorsReader;
    try {
      r = await SafetensorsReader.open(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new SafetensorsError(indexFile, `shard "${shard}" listed in weight_map does not exist`, names[0]);
      }
      throw err;
    }
    try {
      for (const [k, v] of Object.entries(r.metadata)) if (!(k in metadata)) metadata[k] = v;
      for (const n of names) {
        if (!r.has(n)) throw new SafetensorsError(file, `listed in ${path.basename(indexFile)} but missing from the shard`, n);
        tensors.set(n, await r.read(n));
      }
    } finally {
      await r.close();
    }
  }
  return { metadata, tensors, index };
}

export interface WriteCheckpointOptions extends WriteSafetensorsOptions {
  /** Shard when the total tensor bytes exceed this (default 2 GiB). */
  maxShardBytes?: number;
  /** File name stem: "model" gives model.safetensors / model-00001-of-00002.safetensors. */
  baseName?: string;
}

/**
 * Write tensors into `dir` as `model.safetensors`, or — when their total size exceeds
 * `maxShardBytes` — as `model-0000i-of-0000n.safetensors` shards plus `model.safetensors.index.json`
 * (weight_map and metadata.total_size, as Hugging Face writes them). Each file is written
 * atomically; the index is written last. Stale files of the other layout are removed.
 * Returns the files written (relative names).
 */
export async function writeSafetensorsCheckpoint(dir: string, tensors: TensorMap, opts: WriteCheckpointOptions = {}): Promise<string[]> {
  const base = opts.baseName ?? "model";
  const maxBytes = opts.maxShardBytes ?? 2 * 1024 ** 3;
  const dtypeOf = (name: string): WritableDtype => (typeof opts.dtype === "function" ? opts.dtype(name) : (opts.dtype ?? "F32"));
  const list = entriesOf(tensors);
  for (const [name, t] of list) checkTensor(name, t, path.join(dir, `${base}.safetensors`));
  const sizeOf = (name: string, t: TensorLike) => numel(t.shape) * SAFETENSORS_DTYPE_SIZE[dtypeOf(name)];
  const total = list.reduce((a, [n, t]) => a + sizeOf(n, t), 0);
  await fs.mkdir(dir, { recursive: true });
  const single = `${base}.safetensors`;
  const indexName = `${base}.safetensors.index.json`;
  const existing = await fs.readdir(dir);
  const shardRe = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-\\d{5}-of-\\d{5}\\.safetensors$`);

  if (total <= maxBytes) {
    await writeSafetensors(path.join(dir, single), tensors, opts);
    for (const f of existing) if (f === indexName || shardRe.test(f)) await fs.rm(path.join(dir, f), { force: true });
    return [single];
  }
  // Greedy sharding in the given order; a tensor larger than the limit gets a shard of its own.
  const shards: [string, TensorLike][][] = [];
  let cur: [string, TensorLike][] = [];
  let curBytes = 0;
  for (const [n, t] of list) {
    const s = sizeOf(n, t);
    if (cur.length > 0 && curBytes + s > maxBytes) {
      shards.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push([n, t]);
    curBytes += s;
  }
  if (cur.length) shards.push(cur);
  const pad = (i: number) => String(i).padStart(5, "0");
  const names = shards.map((_, i) => `${base}-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`);
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < shards.length; i++) {
    await writeSafetensors(path.join(dir, names[i]), new Map(shards[i]), opts);
    for (const [n] of shards[i]) weightMap[n] = names[i];
  }
  const sortedMap: Record<string, string> = {};
  for (const k of Object.keys(weightMap).sort()) sortedMap[k] = weightMap[k];
  await writeJsonAtomic(path.join(dir, indexName), { metadata: { total_size: total }, weight_map: sortedMap });
  for (const f of existing) if (f === single || (shardRe.test(f) && !names.includes(f))) await fs.rm(path.join(dir, f), { force: true });
  return [...names, indexName];
}

/**
 * Read the weights of a checkpoint folder: `model.safetensors.index.json` (sharded) when present,
 * else `model.safetensors`.
 */
export async function readSafetensorsCheckpoint(
  dir: string,
  opts: { names?: NameFilter; baseName?: string } = {},
): Promise<{ metadata: Record<string, string>; tensors: Map<string, F32Tensor> }> {
  const base = opts.baseName ?? "model";
  const index = path.join(dir, `${base}.safetensors.index.json`);
  if (await exists(index)) {
    const r = await readShardedSafetensors(index, opts);
    return { metadata: r.metadata, tensors: r.tensors };
  }
  const single = path.join(dir, `${base}.safetensors`);
  if (!(await exists(single))) {
    throw new SafetensorsError(dir, `no ${base}.safetensors or ${base}.safetensors.index.json in this folder`);
  }
  const r = await readSafetensors(single, opts);
  return { metadata: r.metadata, tensors: r.tensors };
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}
