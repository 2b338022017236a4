/**
 * The scoring pool on its own: worker threads that load versions, batch the requests that queue while
 * they are busy (and score them as the library does), refuse beyond the queue bound, and keep a released
 * version until the jobs queued for it are done.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../data/test-utils/tmp.js';
import type { LLMRec } from '../models/llmrec.js';
import { loadLLMRec } from '../models/llmrec-io.js';
import { PoolBusyError, ScoringPool } from './scoring-pool.js';
import { ITEMS, NAMES, tinyLLMRecFolder } from './test-utils/fixture.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `${what}: item ${i}: ${a[i]} vs ${b[i]}`);
};

describe('scoring pool', () => {
  let dir: string;
  let folders: string[];
  let models: LLMRec[];
  before(async () => {
    dir = tempDir('evorec-pool-');
    folders = [await tinyLLMRecFolder(dir, 'tiny', { name: 'a', seed: 1 }), await tinyLLMRecFolder(dir, 'tiny', { name: 'b', seed: 2 })];
    models = await Promise.all(folders.map(async (f) => (await loadLLMRec(f, NAMES)).model));
  });

  const jobs = Array.from({ length: 4 }, (_, u) => ({ history: [u, u + 3, u + 7], candidates: [0, 2, 5, 9, 11, 14].filter((c) => c !== u) }));

  it('batches the requests that queue while the worker is busy, scores them as LLMRec.score does, and refuses beyond the queue bound', async () => {
    const pool = new ScoringPool({ workers: 1, batch: 8, maxQueue: 3, limits: { maxPromptTokens: 2048 } });
    after(() => pool.close());
    pool.catalogue(ITEMS, []);
    const { token, info } = await pool.load(folders[0]);
    assert.equal(info.history, 3);
    assert.equal(info.retriever, null);
    // The first job goes to the idle worker at once; the next three wait and then go as one batch.
    const scored = jobs.map((j) => pool.given(token, j));
    assert.equal(pool.busy, 1);
    assert.equal(pool.queued, 3);
    await assert.rejects(pool.given(token, jobs[0]), (e: Error) => e instanceof PoolBusyError && e.message === '3 recommendation requests are waiting for the 1 scoring workers (--max-queue 3); retry shortly');
    const results = await Promise.all(scored);
    assert.deepEqual([...pool.batchSizes].sort(), [[1, 1], [3, 1]], 'one batch of 1, then one of 3');
    results.forEach((r, u) => close(r, models[0].score([jobs[u].history], [jobs[u].candidates])[0], `job ${u}`));
  });

  it('keeps a released version for the jobs queued for it, then drops it; a new version scores as its folder does', async () => {
    const pool = new ScoringPool({ workers: 2, batch: 2, maxQueue: 100, limits: { maxPromptTokens: 2048 } });
    after(() => pool.close());
    pool.catalogue(ITEMS, []);
    const a = await pool.load(folders[0]);
    const queued = [...jobs, ...jobs].map((j) => pool.given(a.token, j));
    pool.release(a.token);
    const b = await pool.load(folders[1]);
    (await Promise.all(queued)).forEach((r, i) => close(r, models[0].score([jobs[i % 4].history], [jobs[i % 4].candidates])[0], `queued job ${i}`));
    close(await pool.given(b.token, jobs[1]), models[1].score([jobs[1].history], [jobs[1].candidates])[0], 'the new version');
    await assert.rejects(pool.given(a.token, jobs[1]), new RegExp(`^Error: version load ${a.token} is not loaded in this worker$`));
  });

  it('refuses a version whose prompts are above the limit, naming the folder and the figures', async () => {
    const pool = new ScoringPool({ workers: 1, batch: 1, maxQueue: 1, limits: { maxPromptTokens: 40 } });
    after(() => pool.close());
    pool.catalogue(ITEMS, []);
    await assert.rejects(pool.load(folders[0]), (e: Error) => {
      assert.match(e.message, /\/a: prompts of up to \d+ tokens \(H = 3 titles of up to 24 tokens\) are above the service's limit of 40 tokens \(--max-prompt-tokens\)$/);
      return true;
    });
  });
});
