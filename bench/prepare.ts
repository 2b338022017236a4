/**
 * Times `prepare` on the full embedded Beauty data (load, clean, split, candidates, write), best of 3.
 * Run: npm run bench -- prepare   (or: node --import tsx bench/prepare.ts)
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepare } from '../src/data/prepare.js';

export async function benchPrepare(runs = 3): Promise<{ bestSeconds: number; hash: string }> {
  const out = join(tmpdir(), `evorec-bench-prepare-${process.pid}`);
  let best = Infinity;
  let hash = '';
  for (let k = 0; k < runs; k++) {
    const t0 = performance.now();
    const r = await prepare({ source: { data: 'beauty' }, out });
    best = Math.min(best, (performance.now() - t0) / 1000);
    hash = r.hash;
  }
  rmSync(out, { recursive: true, force: true });
  return { bestSeconds: best, hash };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchPrepare();
  console.log(`prepare (Beauty, T=3, full data): best of 3 ${r.bestSeconds.toFixed(2)} s, content hash ${r.hash}`);
}
