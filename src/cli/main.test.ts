import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { fixture, tempDir } from '../data/test-utils/tmp.js';

const run = promisify(execFile);
const cli = ['--import', 'tsx', join(import.meta.dirname, 'main.ts')];

describe('evorec CLI', () => {
  const dir = tempDir();
  const inter = fixture(
    dir,
    'log.tsv',
    'uid\tiid\twhen\n' + Array.from({ length: 40 }, (_, k) => `u${k % 4}\ti${k % 9}\t${k}`).join('\n') + '\n',
  );
  const items = fixture(dir, 'titles.tsv', 'iid\tname\n' + Array.from({ length: 9 }, (_, k) => `i${k}\tThing ${k}`).join('\n') + '\n');

  it('prepare writes a split and prints its statistics and content hash', async () => {
    const out = join(dir, 'out');
    const args = ['prepare', '--data', inter, '--items', items, '--user-col', 'uid', '--item-col', 'iid', '--time-col', 'when', '--title-col', 'name', '--periods', '2', '--candidates', '3', '--out', out, '--quiet'];
    const { stdout } = await run('node', [...cli, ...args]);
    const hash = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).hash;
    assert.match(stdout, new RegExp(`content hash ${hash}\\n$`));
    assert.match(stdout, /\| P2 \|/);
    const again = await run('node', [...cli, ...args]);
    assert.match(again.stdout, new RegExp(`content hash ${hash}\\n$`));
  });

  it('stats --json reports the counts of any input', async () => {
    const { stdout } = await run('node', [...cli, 'stats', '--data', inter, '--user-col', 'uid', '--item-col', 'iid', '--time-col', 'when', '--json']);
    const s = JSON.parse(stdout);
    assert.equal(s.users, 4);
    assert.equal(s.items, 9);
    assert.equal(s.interactions, 40);
  });

  it('reports bad input in one line naming file, line and field, exit code 1', async () => {
    const bad = fixture(dir, 'bad.csv', 'user_id,item_id,timestamp\nu,i,yesterday\n');
    await assert.rejects(run('node', [...cli, 'stats', '--data', bad]), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 1);
      assert.equal(e.stderr, `evorec: ${bad}:2: field "timestamp": not a number ("yesterday")\n`);
      return true;
    });
  });

  it('doctor reports kernels, BLAS and threads', async () => {
    const { stdout } = await run('node', [...cli, 'doctor', '--json']);
    const r = JSON.parse(stdout);
    assert.ok(['native', 'ts'].includes(r.kernels));
    assert.equal(typeof r.blas, 'string');
    assert.ok(r.threads >= 1);
    assert.match(r.gemm, /\((builtin-avx512|builtin-avx2|builtin-c|openblas|cblas|typescript)\)$/);
    assert.ok(r.gemmAvailable.some((g: string) => g.endsWith(`(${r.blas})`)), JSON.stringify(r.gemmAvailable));
    const forced = await run('node', [...cli, 'doctor', '--json'], { env: { ...process.env, EVOREC_KERNELS: 'ts' } });
    assert.equal(JSON.parse(forced.stdout).kernels, 'ts');
    assert.equal(JSON.parse(forced.stdout).gemm, 'TypeScript (typescript)');
    const portable = await run('node', [...cli, 'doctor'], { env: { ...process.env, EVOREC_GEMM: 'builtin-c' } });
    if (r.kernels === 'native') {
      assert.match(portable.stdout, /^gemm +built-in portable C \(builtin-c\)$/m);
    }
  });
});
