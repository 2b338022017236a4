import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../data/test-utils/tmp.js';
import { replaceDirAtomic, sweepStaleTemps } from './fs.js';

/** The pid of a process that has exited (a temp file of a killed writer carries such a pid). */
const deadPid = (): number => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);

describe('sweepStaleTemps', () => {
  it('removes the temporary files and folders of dead writers, keeps a live one\'s, and restores a folder moved aside', async () => {
    const root = tempDir();
    const dead = deadPid();
    mkdirSync(join(root, 'adapters', 'finetune'), { recursive: true });
    // A half-written file and a half-built folder of a killed process.
    writeFileSync(join(root, `results.json.tmp-${dead}-3`), '{"half');
    mkdirSync(join(root, 'adapters', 'finetune', `p2.tmp-${dead}-0`));
    writeFileSync(join(root, 'adapters', 'finetune', `p2.tmp-${dead}-0`, 'adapter_config.json'), '{}');
    // Killed between replaceDirAtomic's two renames: the old folder aside, the target missing.
    mkdirSync(join(root, 'sasrec', `p1.tmp-${dead}-1`), { recursive: true });
    mkdirSync(join(root, 'sasrec', `p1.tmp-${dead}-1.old`));
    writeFileSync(join(root, 'sasrec', `p1.tmp-${dead}-1.old`, 'config.json'), 'old');
    // Moved aside while the target exists again: the aside copy is stale.
    mkdirSync(join(root, 'sasrec', 'p2'));
    mkdirSync(join(root, 'sasrec', `p2.tmp-${dead}-2.old`));
    // This process's own temp file: a write in progress, not touched.
    writeFileSync(join(root, `options.json.tmp-${process.pid}-9`), '{}');

    const swept = sweepStaleTemps(root);
    assert.equal(swept.length, 5);
    assert.ok(!existsSync(join(root, `results.json.tmp-${dead}-3`)));
    assert.ok(!existsSync(join(root, 'adapters', 'finetune', `p2.tmp-${dead}-0`)));
    assert.ok(existsSync(join(root, 'adapters', 'finetune')));
    assert.equal(readFileSync(join(root, 'sasrec', 'p1', 'config.json'), 'utf8'), 'old');
    assert.ok(!existsSync(join(root, 'sasrec', `p1.tmp-${dead}-1`)));
    assert.ok(existsSync(join(root, 'sasrec', 'p2')) && !existsSync(join(root, 'sasrec', `p2.tmp-${dead}-2.old`)));
    assert.ok(existsSync(join(root, `options.json.tmp-${process.pid}-9`)));
    assert.deepEqual(sweepStaleTemps(root), []);
  });

  it('replaceDirAtomic leaves the target untouched when the build fails, and no temporary folder', async () => {
    const root = tempDir();
    const target = join(root, 'p1');
    await replaceDirAtomic(target, (d) => writeFileSync(join(d, 'config.json'), 'first'));
    await assert.rejects(replaceDirAtomic(target, (d) => {
      writeFileSync(join(d, 'config.json'), 'second');
      throw new Error('disk full');
    }), /disk full/);
    assert.equal(readFileSync(join(target, 'config.json'), 'utf8'), 'first');
    assert.deepEqual(sweepStaleTemps(root), []);
  });
});
