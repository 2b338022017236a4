import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { BACKGROUND_NICE, currentThreadId } from './priority.js';
import { ScoringPool } from './scoring-pool.js';

/** A thread's nice value from /proc (field 19 of stat, counted after the parenthesised command name). */
function niceOf(tid: number): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}
const threads = () => readdirSync('/proc/self/task').map(Number);

describe('background priority', () => {
  it('runs the scoring workers at a higher nice value than the event loop, which keeps its own', { skip: process.platform !== 'linux' && 'needs /proc' }, async () => {
    const main = currentThreadId()!;
    assert.equal(main, process.pid, 'the main thread is the task whose id is the pid');
    const before = niceOf(main);
    const niced = () => threads().filter((t) => t !== main && niceOf(t) === Math.max(BACKGROUND_NICE, before));
    const already = new Set(niced());
    const pool = new ScoringPool({ workers: 1, batch: 1, maxQueue: 3, limits: { maxPromptTokens: 2048 } });
    try {
      pool.catalogue([{ id: 'a', title: 'A' }], []);
      // The worker lowers its own priority as it starts: wait for a new thread at the background value.
      let found: number[] = [];
      for (let k = 0; k < 200 && found.length === 0; k++) {
        found = niced().filter((t) => !already.has(t));
        if (!found.length) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(found.length, 1, `one worker thread at nice ${BACKGROUND_NICE}`);
      assert.equal(niceOf(main), before, 'the event loop keeps its priority');
    } finally {
      await pool.close();
    }
  });
});
