/**
 * Training checkpoints: parameters + AdamW moments + step, in one self-contained file.
 *
 * Format (little-endian):
 *   bytes 0-7   magic "EVORECK1"
 *   bytes 8-11  uint32 length L of the JSON header (UTF-8)
 *   bytes 12-15 uint32 0 (reserved)
 *   bytes 16..  JSON header, space-padded so the data section starts at a multiple of 64
 *   data        float32 arrays, each at header.tensors[i].offset (bytes from the data start)
 * Header: { format: "evorec-checkpoint", version: 1, step, meta, optimizer?: {stepCount, lr, beta1,
 * beta2, eps}, tensors: [{ name, role: "param" | "adam.m" | "adam.v", shape, offset, length }] }.
 * Files are written to a temporary name in the same folder, fsynced, then renamed into place.
 */
import { openSync, writeSync, fsyncSync, closeSync, renameSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import type { Tensor } from './tensor.js';
import type { AdamW } from './optim.js';

const MAGIC = 'EVORECK1';

export interface CheckpointEntry {
  name: string;
  role: 'param' | 'adam.m' | 'adam.v';
  shape: number[];
  offset: number;
  length: number;
}

export interface CheckpointHeader {
  format: 'evorec-checkpoint';
  version: 1;
  step: number;
  meta: Record<string, unknown>;
  optimizer?: { stepCount: number; lr: number; beta1: number; beta2: number; eps: number };
  tensors: CheckpointEntry[];
}

export interface SaveOptions {
  params: Record<string, Tensor>;
  optimizer?: AdamW;
  step?: number;
  meta?: Record<string, unknown>;
}

/** Write a checkpoint atomically (temporary file + rename). */
export function saveCheckpoint(path: string, opts: SaveOptions): void {
  const arrays: Float32Array[] = [];
  const entries: CheckpointEntry[] = [];
  let offset = 0;
  const push = (name: string, role: CheckpointEntry['role'], shape: readonly number[], data: Float32Array): void => {
    entries.push({ name, role, shape: shape.slice(), offset, length: data.length });
    arrays.push(data);
    offset += data.length * 4;
  };
  for (const [name, t] of Object.entries(opts.params)) push(name, 'param', t.shape, t.data);
  const opt = opts.optimizer;
  if (opt) {
    for (const [name, t] of Object.entries(opts.params)) {
      const s = opt.state.get(t);
      if (!s) continue;
      push(name, 'adam.m', t.shape, s.m);
      push(name, 'adam.v', t.shape, s.v);
    }
  }
  const header: CheckpointHeader = {
    format: 'evorec-checkpoint',
    version: 1,
    step: opts.step ?? opt?.stepCount ?? 0,
    meta: opts.meta ?? {},
    tensors: entries,
  };
  if (opt) header.optimizer = { stepCount: opt.stepCount, lr: opt.lr, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps };
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (64 - ((16 + json.length) % 64)) % 64;
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const pre = Buffer.alloc(16);
  pre.write(MAGIC, 0, 'ascii');
  pre.writeUInt32LE(json.length, 8);
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, pre);
    writeSync(fd, json);
    for (const a of arrays) writeSync(fd, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* ignore */ }
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** Parse a checkpoint file: header plus a Float32Array per entry (copied, aligned). */
export function readCheckpoint(path: string): { header: CheckpointHeader; data: Map<string, Float32Array> } {
  const buf = readFileSync(path);
  if (buf.length < 16 || buf.toString('ascii', 0, 8) !== MAGIC) throw new RangeError(`${path}: not an evorec checkpoint`);
  const len = buf.readUInt32LE(8);
  const header = JSON.parse(buf.toString('utf8', 16, 16 + len)) as CheckpointHeader;
  if (header.format !== 'evorec-checkpoint' || header.version !== 1) throw new RangeError(`${path}: unsupported checkpoint version`);
  const base = 16 + len;
  const data = new Map<string, Float32Array>();
  for (const e of header.tensors) {
    const start = base + e.offset;
    if (start + e.length * 4 > buf.length) throw new RangeError(`${path}: truncated (${e.name})`);
    const arr = new Float32Array(e.length);
    new Uint8Array(arr.buffer).set(buf.subarray(start, start + e.length * 4));
    data.set(`${e.role}:${e.name}`, arr);
  }
  return { header, data };
}

export interface LoadOptions {
  params: Record<string, Tensor>;
  optimizer?: AdamW;
  /** Fail when a parameter is missing from the file (default true). */
  strict?: boolean;
}

/** Restore parameters (and optimiser moments and step) in place; returns the saved step and meta. */
export function loadCheckpoint(path: string, opts: LoadOptions): { step: number; meta: Record<string, unknown> } {
  const { header, data } = readCheckpoint(path);
  const strict = opts.strict ?? true;
  const shapes = new Map(header.tensors.map((e) => [`${e.role}:${e.name}`, e.shape]));
  for (const [name, t] of Object.entries(opts.params)) {
    const d = data.get(`param:${name}`);
    if (!d) {
      if (strict) throw new RangeError(`checkpoint ${path} has no parameter "${name}"`);
      continue;
    }
    const shape = shapes.get(`param:${name}`)!;
    if (shape.length !== t.shape.length || shape.some((s, i) => s !== t.shape[i])) {
      throw new RangeError(`checkpoint parameter "${name}" has shape [${shape}], model has [${t.shape}]`);
    }
    t.data.set(d);
    const opt = opts.optimizer;
    if (opt) {
      const m = data.get(`adam.m:${name}`);
      const v = data.get(`adam.v:${name}`);
      if (m && v) {
        const s = opt.stateOf(t);
        s.m.set(m);
        s.v.set(v);
      }
    }
  }
  if (opts.optimizer && header.optimizer) {
    opts.optimizer.stepCount = header.optimizer.stepCount;
    opts.optimizer.lr = header.optimizer.lr;
  }
  return { step: header.step, meta: header.meta };
}
