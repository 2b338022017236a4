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

/** The item titles of the small CSV datasets that the command tests share (item i<k> is TITLES[k]). */
export const FRUIT_TITLES = ['red apple', 'green pear', 'blue plum', 'gold melon', 'pink peach', 'black grape', 'white lime', 'brown fig', 'gray kiwi', 'tan date'];

/**
 * A CSV folder (interactions.csv, items.csv) of `users` users over four rounds of 3 interactions each;
 * from the second round on, a user skips round r when (u + r) % 4 = 0, so every period has active and
 * inactive users. Timestamps count up from `firstTimestamp`, one per row.
 */
export function roundsDataset(dir: string, users: number, firstTimestamp = 0, titles: readonly string[] = FRUIT_TITLES): void {
  const rows = ['user_id,item_id,timestamp'];
  let ts = firstTimestamp;
  for (let round = 0; round < 4; round++) {
    for (let u = 0; u < users; u++) {
      if (round > 0 && (u + round) % 4 === 0) continue;
      for (let j = 0; j < 3; j++) rows.push(`u${u},i${(u + round * 3 + j) % titles.length},${ts++}`);
    }
  }
  fixture(dir, 'interactions.csv', rows.join('\n') + '\n');
  fixture(dir, 'items.csv', 'item_id,title\n' + titles.map((n, k) => `i${k},${n}`).join('\n') + '\n');
}
