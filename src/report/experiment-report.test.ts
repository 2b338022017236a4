import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { experimentHtml, experimentMarkdown } from './experiment-report.js';
import { record, run } from './test-fixtures.js';

const runs = [
  run([record('static', 1, 0.2, 0.5, 0), record('static', 2, 0.2, 0.5, 0), record('finetune', 1, 0.4, 0.2, 10), record('finetune', 2, 0.4, 0.2, 10), record('evorec', 1, 0.4, 0.4, 4), record('evorec', 2, 0.4, 0.4, 6)]),
  run([record('static', 1, 0.2, 0.5, 0), record('static', 2, 0.2, 0.5, 0), record('finetune', 1, 0.6, 0.3, 10), record('finetune', 2, 0.6, 0.3, 10), record('evorec', 1, 0.5, 0.5, 5), record('evorec', 2, 0.5, 0.5, 5)]),
];

describe('experiment report', () => {
  it('prints mean ± standard error over seeds and the paired differences with their verdicts', () => {
    const md = experimentMarkdown(runs, 'popularity', 'T');
    assert.match(md, /mean over 2 training seeds/);
    // finetune active NDCG@3: 0.4 and 0.6 -> 0.5000 ± 0.1000; static has no spread.
    assert.match(md, /\| finetune \| [^\n]*0\.5000 ± 0\.1000/);
    assert.match(md, /\| static \| 0\.1000 ± 0\.0000 \| 0\.2000 ± 0\.0000 \| 0\.2000 ± 0\.0000 \|/);
    // evorec - finetune: active -0.0 and -0.1 -> -0.0500 ± 0.0500 (not called); inactive +0.2 both seeds -> called.
    const row = md.split('\n').find((l) => l.startsWith('| finetune | ') && l.includes('x |'))!;
    assert.ok(row, md);
    const cells = row.split('|').map((c) => c.trim());
    assert.equal(cells[2], '-0.0500 ± 0.0500');
    // +0.2 in both seeds is a zero-spread difference: no call (it used to be called).
    assert.equal(cells[3], '+0.2000 ± 0.0000');
    assert.equal(cells[8], '0.50x');
    const vsStatic = md.slice(md.indexOf('## evorec against each strategy')).split('\n').find((l) => l.startsWith('| static | '))!;
    assert.equal(vsStatic.split('|').map((c) => c.trim())[3], '-0.0500 ± 0.0500');
    // Each strategy against static: finetune loses 0.3 and 0.2 on inactive users -> -0.2500 ± 0.0500, called.
    const table = md.slice(md.indexOf('## Each strategy against static'));
    const ft = table.split('\n').find((l) => l.startsWith('| finetune | '))!.split('|').map((c) => c.trim());
    assert.equal(ft[3], '-0.2500 ± 0.0500 ▼');
    assert.equal(ft[2], '+0.3000 ± 0.1000 ▲');
    // ... beside each strategy's own mean update time (static trains nothing: no time to divide by).
    assert.match(table, /\| strategy minus static \|[^\n]*\| update s \|/);
    assert.deepEqual([ft.at(-2), table.split('\n').find((l) => l.startsWith('| evorec | '))!.split('|').map((c) => c.trim()).at(-2)], ['10.0', '5.0']);
  });

  it('prints each update\'s own peak memory, and none for records that only hold the process\'s mark', () => {
    const own = runs.map((r) => ({ ...r, updates: r.updates.map((u) => ({ ...u, peakPerUpdate: u.strategy !== 'static', peakRssMb: u.strategy === 'evorec' ? 300 : 500 })) }));
    const md = experimentMarkdown(own, 'popularity', 'T');
    const avg = md.slice(md.indexOf('## Averaged over periods'));
    assert.match(avg, /\| strategy \|[^\n]*\| samples \| peak MB \|/);
    const cell = (name: string) => avg.split('\n').find((l) => l.startsWith(`| ${name} | `))!.split('|').map((c) => c.trim()).at(-2);
    assert.deepEqual(['static', 'finetune', 'evorec'].map(cell), ['–', '500', '300']);
  });

  it('ranks the EvoRec variants on validation, not on test', () => {
    const withValid = runs.map((r, k) => ({
      ...r,
      strategies: [...r.strategies, 'evorec-drift'],
      updates: [
        ...r.updates.map((u) => ({ ...u, report: { ...u.report, bestValid: u.strategy === 'evorec' ? 0.30 + k / 100 : undefined } })),
        ...[1, 2].map((t) => ({ ...record('evorec-drift', t, 0.1, 0.1), report: { ...record('evorec-drift', t, 0.1, 0.1).report, bestValid: 0.32 + k / 100 } })),
      ],
    }));
    const md = experimentMarkdown(withValid, 'popularity', 'T');
    const part = md.slice(md.indexOf('## EvoRec variants on validation'));
    // evorec-drift: 0.32 and 0.33 -> 0.3250 ± 0.0050, above evorec's 0.3050 although its test figures are lower.
    assert.match(part, /\| evorec-drift \| 0\.3250 ± 0\.0050 \|\n\| evorec \| 0\.3050 ± 0\.0050 \|/);
    assert.match(part, /Best on validation: \*\*evorec-drift\*\*\./);
    assert.doesNotMatch(experimentMarkdown(runs, 'popularity', 'T'), /variants on validation/, 'one variant: nothing to rank');
  });

  it('says that one seed allows no call', () => {
    const md = experimentMarkdown(runs[0], 'popularity', 'T');
    assert.match(md, /One training seed: no standard errors/);
    assert.doesNotMatch(md, /±/);
  });

  it('draws error bars in the HTML charts', () => {
    const html = experimentHtml(runs, 'popularity', 'T');
    assert.match(html, /mean ± standard error over 2 seeds/);
    assert.match(html, /<title>finetune P1: 0\.5000 ± 0\.1000<\/title>/);
    assert.ok((html.match(/<line x1="[\d.]+" y1="[\d.]+" x2="[\d.]+" y2="[\d.]+" stroke="#/g) ?? []).length >= 6);
  });
});

describe('the probe bound in the default main job', async () => {
  const { loadSplit } = await import('../data/prepare.js');
  const { experimentBaselines } = await import('../evolve/runner.js');
  const { probeCells } = await import('./experiment-report.js');
  const { DEFAULTS } = await import('../cli/experiment-command.js');
  // The default `evorec experiment` (250 users, every active user up to 500, as many inactive ones, seed 42):
  // the probes of every period and group, on the sets the models rank.
  const { split } = await loadSplit({ data: 'beauty' }, { sampleUsers: DEFAULTS.users, sampleSeed: 42 });
  const results = { format: 'evorec-experiment/1' as const, strategies: [], periods: split.numPeriods - 1, baselines: {} as Record<string, Record<string, import('../eval/evaluate.js').EvalResult>>, updates: [] };
  for (let t = 1; t < split.numPeriods; t++) results.baselines[`p${t}`] = await experimentBaselines(split, t, { evalUsers: DEFAULTS.evalUsers, seed: 42, samplers: ['matched', 'popularity'], candidates: 20 });

  it('has no probe cell that misses the bound beyond its 95% interval, and says so under each period', () => {
    const cells = probeCells(results);
    assert.equal(cells.length, 3 * 3 * 3);
    assert.deepEqual(cells.filter((c) => c.check === 'outside'), []);
    // Most cells are within the bound on their own figure, not only within their interval.
    assert.ok(cells.filter((c) => c.check === 'within').length >= 22, JSON.stringify(cells.filter((c) => c.check !== 'within')));
    const md = experimentMarkdown(results, 'matched', 'T');
    assert.equal(md.match(/Probe bound \(HR@1 within 0\.5x-1\.5x random's\): \d+ of 9 cells within/g)?.length, 3, md);
    assert.doesNotMatch(md, /Yardstick alarm/);
  });

  it('raises the alarm on the leaking first protocol', () => {
    const md = experimentMarkdown(results, 'popularity', 'T');
    // Only the matched view is held to the bound: the popularity view prints no bound line...
    assert.doesNotMatch(md, /Probe bound/);
    // ...and the cells of that view, held to it, miss it.
    const asMatched = (b: Record<string, unknown>) => Object.fromEntries(Object.entries(b).filter(([n]) => n.endsWith('/popularity')).map(([n, r]) => [n.replace(/\/popularity$/, '/matched'), r]));
    const leaking = { ...results, baselines: Object.fromEntries(Object.entries(results.baselines).map(([k, b]) => [k, asMatched(b)])) } as typeof results;
    const bad = probeCells(leaking).filter((c) => c.check === 'outside');
    assert.ok(bad.some((c) => c.probe === 'least popular first' && c.group === 'all' && c.hr1 > 0.5), JSON.stringify(bad));
    assert.match(experimentMarkdown(leaking, 'matched', 'T'), /\*\*Yardstick alarm\*\*: [^\n]*least popular first/);
  });
});
