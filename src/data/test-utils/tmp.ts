/** Helpers for tests: a fresh temporary folder and small fixture files, plain or gzip. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export function tempDir(prefix = 'evorec-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes `content` to dir/name, gzipped when the name ends in .gz. Returns the path. */
export function fixture(dir: string, name: string, content: string | Buffer): string {
  const path = join(dir, name);
  const buf = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  writeFileSync(path, name.endsWith('.gz') ? gzipSync(buf) : buf);
  return path;
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
