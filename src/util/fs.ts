/**
 * Files that are never half-written: content goes to a temporary file beside the target, which is
 * renamed into place only when complete (rename is atomic on one file system).
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, promises as fsp, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

let counter = 0;
export const tempName = (target: string): string => `${target}.tmp-${process.pid}-${counter++}`;

/** Synchronous atomic write (small files: manifests, JSON results). */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  mkdirSync(dirname(target), { recursive: true });
  const tmp = tempName(target);
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, target);
}

/**
 * A buffered line writer that hashes what it writes; `close()` renames the finished file into place and
 * returns its SHA-256. `abort()` removes the temporary file.
 */
export class AtomicLineWriter {
  private readonly tmp: string;
  private readonly fd: number;
  private readonly hash = createHash('sha256');
  private parts: string[] = [];
  private size = 0;
  lines = 0;

  constructor(readonly target: string) {
    mkdirSync(dirname(target), { recursive: true });
    this.tmp = tempName(target);
    this.fd = openSync(this.tmp, 'w');
  }

  write(line: string): void {
    this.parts.push(line, '\n');
    this.size += line.length + 1;
    this.lines++;
    if (this.size > 1 << 20) this.flush();
  }

  private flush(): void {
    if (this.parts.length === 0) return;
    const buf = Buffer.from(this.parts.join(''), 'utf8');
    this.hash.update(buf);
    writeSync(this.fd, buf);
    this.parts = [];
    this.size = 0;
  }

  close(): string {
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
    renameSync(this.tmp, this.target);
    return this.hash.digest('hex');
  }

  abort(): void {
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
    rmSync(this.tmp, { force: true });
  }
}

export const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

/**
 * Replaces a directory by one built elsewhere: `build` fills a fresh temporary directory, which then takes
 * the target's place. If `build` throws, the target is left untouched.
 */
export async function replaceDirAtomic<T>(target: string, build: (dir: string) => Promise<T> | T): Promise<T> {
  const tmp = tempName(target);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  let result: T;
  try {
    result = await build(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const old = `${tmp}.old`;
  let moved = false;
  try {
    renameSync(target, old);
    moved = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  renameSync(tmp, target);
  if (moved) rmSync(old, { recursive: true, force: true });
  return result;
}

/**
 * Asynchronous atomic write of a string, a buffer or a list of chunks (large files such as safetensors
 * shards are written chunk by chunk, never concatenated): temp file, fsync, rename. On failure the
 * temporary file is removed and the target is left untouched.
 */
export async function writeFileAtomicAsync(target: string, data: string | Uint8Array | readonly Uint8Array[]): Promise<void> {
  await fsp.mkdir(dirname(target), { recursive: true });
  const tmp = tempName(target);
  const fh = await fsp.open(tmp, 'w');
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) await fh.writeFile(data);
    else {
      for (const chunk of data) {
        for (let off = 0; off < chunk.length; ) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
      }
    }
    await fh.sync();
    await fh.close();
    await fsp.rename(tmp, target);
  } catch (err) {
    await fh.close().catch(() => {});
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
}

/** JSON with 2-space indent and a trailing newline, written atomically. */
export async function writeJsonAtomic(target: string, value: unknown): Promise<void> {
  await writeFileAtomicAsync(target, JSON.stringify(value, null, 2) + '\n');
}

/** `<target>.tmp-<pid>-<n>` and replaceDirAtomic's `<target>.tmp-<pid>-<n>.old`. */
const TEMP_RE = /^(.*)\.tmp-(\d+)-\d+(\.old)?$/;

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Cleans up after a process killed in the middle of an atomic write under `root` (recursively): the
 * temporary files and folders of dead processes are removed, except a folder that replaceDirAtomic had
 * moved aside (`.old`) when its target is missing: that is the last good state, and it is moved back.
 * Returns the paths removed or restored.
 */
export function sweepStaleTemps(root: string): string[] {
  const done: string[] = [];
  const walk = (dir: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    // `.old` folders first, so that a restored target is seen before its half-built replacement is removed.
    entries.sort((a, b) => Number(b.name.endsWith('.old')) - Number(a.name.endsWith('.old')));
    for (const e of entries) {
      const p = join(dir, e.name);
      const m = TEMP_RE.exec(e.name);
      if (!m) {
        if (e.isDirectory()) walk(p);
        continue;
      }
      if (processAlive(Number(m[2]))) continue;
      const target = join(dir, m[1]);
      if (m[3] && !existsSync(target)) renameSync(p, target);
      else rmSync(p, { recursive: true, force: true });
      done.push(p);
    }
  };
  walk(root);
  return done;
}
