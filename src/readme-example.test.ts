/**
 * The README's library example, run as written: the fenced block after the `readme-example:
 * custom-strategy` marker is extracted from README.md, its `from 'evorec'` import pointed at this
 * checkout's src/index.ts, and the file run with tsx in a temporary folder (its relative `out` lands
 * there). So the example cannot drift from the API.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { tempDir } from './data/test-utils/tmp.js';

const run = promisify(execFile);

/** The first fenced block after `marker` in a Markdown text. */
function fencedBlockAfter(markdown: string, marker: string): { lang: string; code: string } {
  const at = markdown.indexOf(marker);
  if (at < 0) throw new Error(`README.md: no "${marker}" marker`);
  const m = /```(\w*)\n([\s\S]*?)\n```/.exec(markdown.slice(at));
  if (!m) throw new Error(`README.md: no fenced block after "${marker}"`);
  return { lang: m[1], code: m[2] };
}

it('the README library example (a custom strategy beside named ones, tiny settings) runs and prints every update', async () => {
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
  const { lang, code } = fencedBlockAfter(readme, 'readme-example: custom-strategy');
  assert.equal(lang, 'ts');
  assert.match(code, /from 'evorec';/, 'the example imports the package by name');
  const entry = pathToFileURL(join(import.meta.dirname, 'index.ts')).href;
  const dir = tempDir('evorec-readme-');
  const file = join(dir, 'example.mts');
  writeFileSync(file, code.replace(/from 'evorec';/g, `from '${entry}';`));
  const { stdout, stderr } = await run(process.execPath, ['--import', import.meta.resolve('tsx'), file], { cwd: dir, maxBuffer: 64 << 20 });
  // Progress events went to stderr; one line per update to stdout, 3 strategies x 2 periods.
  assert.match(stderr, /prepare the split\n/);
  assert.match(stderr, /seed 1: run 3 strategies over 2 periods\n/);
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, 6, stdout);
  const parsed = lines.map((l) => {
    const m = /^P(\d) (\S+): NDCG@3 (\d\.\d{4}) on (\d+) users, (\d+) trainable of (\d+)$/.exec(l);
    assert.ok(m, l);
    return { period: Number(m[1]), strategy: m[2], ndcg: Number(m[3]), users: Number(m[4]), trainable: Number(m[5]), total: Number(m[6]) };
  });
  assert.deepEqual(parsed.map((p) => `${p.period} ${p.strategy}`), ['1 static', '1 finetune', '1 last-layer', '2 static', '2 finetune', '2 last-layer']);
  const of = (s: string) => parsed.filter((p) => p.strategy === s);
  for (const p of of('static')) assert.equal(p.trainable, 0);
  // The custom strategy trains one decoder layer of the shipped base's eight (data/base-deep): an eighth of finetune's LoRA.
  for (const [i, p] of of('last-layer').entries()) {
    assert.equal(p.trainable * 8, of('finetune')[i].trainable);
    assert.equal(p.total, of('finetune')[i].total);
  }
  // What it printed is what the run wrote.
  const out = join(dir, 'runs', 'readme-example');
  for (const f of ['results.json', 'results.md', 'report.html', 'options.json', 'seed-1/adapters/last-layer/p2/adapter_model.safetensors']) assert.ok(existsSync(join(out, f)), f);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  assert.deepEqual(results.runs[0].strategies, ['static', 'finetune', 'last-layer']);
  const u = results.runs[0].updates.find((x: { strategy: string; period: number }) => x.strategy === 'last-layer' && x.period === 2);
  assert.deepEqual(u.report.layers, [7]);
  assert.equal(u.eval.matched.groups.all.metrics['NDCG@3'].toFixed(4), of('last-layer')[1].ndcg.toFixed(4));
  assert.match(readFileSync(join(out, 'results.md'), 'utf8'), /\| last-layer \| /);
});
