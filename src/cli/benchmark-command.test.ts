import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { fixture, tempDir } from '../data/test-utils/tmp.js';

const run = promisify(execFile);
const cli = ['--import', 'tsx', join(import.meta.dirname, 'main.ts')];

describe('evorec benchmark', () => {
  it('runs leave-one-out over the full catalogue for every user, and reuses the trained SASRec', async () => {
    // 12 users walking a cycle of 8 items: the last item of each user is the test target.
    const dir = tempDir();
    const rows = ['user_id,item_id,timestamp'];
    let ts = 0;
    for (let u = 0; u < 12; u++) for (let j = 0; j < 6; j++) rows.push(`u${u},i${(u + j) % 8},${ts++}`);
    fixture(dir, 'interactions.csv', rows.join('\n') + '\n');
    fixture(dir, 'items.csv', 'item_id,title\n' + Array.from({ length: 8 }, (_, k) => `i${k},item ${k}`).join('\n') + '\n');
    const out = join(dir, 'bench');
    const args = [...cli, 'benchmark', '--data', dir, '--epochs', '2', '--hidden', '8', '--out', out, '--quiet'];
    const first = await run('node', args);
    assert.match(first.stdout, /Leave-one-out benchmark on .*: 12 users, 8 items, full-catalogue ranking/);
    assert.match(first.stdout, /\| popularity \| 12 \| /);
    assert.match(first.stdout, /\| sasrec \| 12 \| /);
    const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    assert.equal(r.protocol, 'leave-one-out, full catalogue');
    assert.equal(r.inPublishedRange, null, 'the published range is for Beauty only');
    assert.equal(r.results.sasrec.groups.all.users, 12);
    assert.equal(r.results.sasrec.candidates, 8);
    const again = await run('node', [...args, '--json']);
    assert.deepEqual(JSON.parse(again.stdout).results, r.results, 'the saved SASRec is reused');
  });
});
