import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../data/test-utils/tmp.js';
import { readExperimentResults } from './experiment-files.js';
import { record, run } from './test-fixtures.js';

describe('readExperimentResults', () => {
  it('reads one seed\'s folder (format evorec-experiment/1) with the views its evaluations hold, the headline first', () => {
    const dir = tempDir();
    const u = record('static', 1, 0.1, 0.2);
    u.eval = { matched: u.eval.popularity, uniform: u.eval.popularity, 'two-stage': u.eval.popularity };
    writeFileSync(join(dir, 'results.json'), JSON.stringify(run([u])));
    const r = readExperimentResults(dir);
    assert.deepEqual(r.samplers, ['matched', 'uniform', 'two-stage']);
    assert.equal(r.runs.length, 1);
  });
});
