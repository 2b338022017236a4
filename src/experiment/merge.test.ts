import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../data/test-utils/tmp.js';
import { record, run } from '../report/test-fixtures.js';
import { mergeSeeds } from './merge.js';

/** An experiment folder as runExperiment leaves it, with the given seeds' results (NDCG@3 offset by seed). */
function folder(seeds: number[], options: Record<string, unknown> = { users: 600, updateLr: 4e-4 }, unfinished: number[] = []): string {
  const dir = tempDir();
  writeFileSync(join(dir, 'options.json'), JSON.stringify({ ...options, firstTrainSeed: seeds[0] }));
  for (const seed of seeds) {
    const s = join(dir, `seed-${seed}`);
    mkdirSync(s);
    writeFileSync(join(s, 'options.json'), JSON.stringify({ ...options, firstTrainSeed: seeds[0], trainSeed: seed }));
    const updates = ['static', 'finetune'].flatMap((name) => [1, 2].map((t) => record(name, t, 0.1 + seed / 100, 0.2)));
    writeFileSync(join(s, 'results.json'), JSON.stringify(run(unfinished.includes(seed) ? updates.slice(0, 3) : updates)));
  }
  writeFileSync(join(dir, 'results.json'), JSON.stringify({ format: 'evorec-experiment-seeds/1', title: `Evolution experiment: x, ${seeds.length} training seeds`, samplers: ['popularity'], seeds, runs: [] }));
  return dir;
}

describe('merge-seeds', () => {
  it('merges the finished seeds of folders run apart, in seed order, with the reports and their sources', () => {
    const a = folder([3]);
    const b = folder([1, 2]);
    const out = join(tempDir(), 'merged');
    const m = mergeSeeds(out, [a, b], { command: 'evorec merge-seeds ...' });
    assert.deepEqual(m.seeds, [1, 2, 3]);
    assert.equal(m.title, 'Evolution experiment: x, 3 training seeds');
    assert.deepEqual(m.runs.map((r) => Math.round(r.updates[0].eval.popularity.groups.active!.metrics['NDCG@3'] * 100)), [11, 12, 13], 'each seed\'s own results');
    for (const f of ['results.json', 'results.md', 'report.html', 'merged-from.json']) assert.ok(existsSync(join(out, f)), f);
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).seeds, [1, 2, 3]);
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'merged-from.json'), 'utf8')).seeds.map((s: { seed: number }) => s.seed), [1, 2, 3]);
  });

  it('refuses seeds of other options (naming the folder and option), a seed twice, and unfinished seeds unless told', () => {
    const a = folder([1]);
    const other = folder([2], { users: 600, updateLr: 1e-3 });
    assert.throws(() => mergeSeeds(tempDir(), [a, other]), (e: Error) => e instanceof RangeError && e.message === `${join(other, 'seed-2')}: made with updateLr 0.001, but ${join(a, 'seed-1')} with 0.0004; only seeds of the same options merge`);
    assert.throws(() => mergeSeeds(tempDir(), [a, folder([1])]), /^RangeError: seed 1 is in both .*seed-1 and .*seed-1; merge each seed once$/);
    const half = folder([2], undefined, [2]);
    assert.throws(() => mergeSeeds(tempDir(), [a, half]), /^RangeError: unfinished seeds: .*seed-2 \(finish them with evorec experiment, or pass --allow-unfinished to leave them out\)$/);
    assert.deepEqual(mergeSeeds(tempDir(), [a, half], { allowUnfinished: true }).seeds, [1]);
    assert.throws(() => mergeSeeds(tempDir(), [join(tempDir(), 'nothing')]), /nothing: not found$/);
  });
});
