import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

describe('peak memory per update', () => {
  it('resets the high-water mark, so a later stretch reports its own peak, not the process\'s', { skip: process.platform !== 'linux' }, () => {
    // In a child process with a GC we can call: 400 MB touched and freed, then the mark is reset.
    const period = fileURLToPath(new URL('./period.ts', import.meta.url));
    const script = `
      const { resetPeakRss, peakRssMb } = await import(${JSON.stringify(period)});
      let big = new Float64Array(50e6).fill(1);
      const before = peakRssMb();
      big = null; globalThis.gc();
      const reset = resetPeakRss();
      const after = peakRssMb();
      process.stdout.write(JSON.stringify({ before, reset, after }));`;
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const { before, reset, after } = JSON.parse(r.stdout) as { before: number; reset: boolean; after: number };
    assert.equal(reset, true);
    assert.ok(before > 400, `peak with 400 MB held: ${before} MB`);
    assert.ok(after < before - 300, `after the reset: ${after} MB (before ${before} MB)`);
  });
});
