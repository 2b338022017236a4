/**
 * The command line's conventions (issue 17, point 5): a closed pipe ends quietly, documented exit codes
 * (0 ok, 1 bad input or an expected failure, 2 usage), option ranges, --json where a table is printed,
 * and one clear line instead of a stack trace for the inputs review found.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { fixture, tempDir } from '../data/test-utils/tmp.js';
import { decoderPreset, HF_KEYS } from '../io/index.js';
import { saveModelFolder } from '../nn/checkpoint-folder.js';
import { Decoder } from '../nn/decoder.js';
import { trainTokenizer } from '../tokenizer/index.js';

const run = promisify(execFile);
const cli = ['--import', 'tsx', join(import.meta.dirname, 'main.ts')];
const NAMES = ['red apple', 'green pear', 'blue plum', 'gold melon', 'pink peach', 'black grape', 'white lime', 'brown fig', 'gray kiwi', 'tan date'];

type Failure = { code: number; stderr: string; stdout: string };

/** Runs the CLI expecting a failure; returns its exit code and output. */
async function fails(args: string[]): Promise<Failure> {
  try {
    await run('node', [...cli, ...args]);
  } catch (e) {
    return e as Failure;
  }
  throw new Error(`expected evorec ${args.join(' ')} to fail`);
}

const dir = tempDir();
const rows = ['user_id,item_id,timestamp'];
let ts = 0;
for (let u = 0; u < 40; u++) for (let j = 0; j < 5; j++) rows.push(`u${u},i${(u * 3 + j) % NAMES.length},${ts++}`);
const inter = fixture(dir, 'interactions.csv', rows.join('\n') + '\n');
fixture(dir, 'items.csv', 'item_id,title\n' + NAMES.map((n, k) => `i${k},${n}`).join('\n') + '\n');
const split = ['--data', dir, '--periods', '1', '--base', '0.8', '--history', '3', '--candidates', '5', '--quiet'];

describe('evorec CLI conventions', () => {
  it('ends quietly with exit code 0 when stdout is closed early (evorec doctor | head)', async () => {
    const child = spawn('node', [...cli, 'doctor'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader is gone before the first write: every write gets EPIPE
    let stderr = '';
    child.stderr.on('data', (b) => (stderr += b));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.equal(stderr, '');
    assert.equal(code, 0);
  });

  it('a closed pipe keeps the exit code already decided (a usage error stays 2)', async () => {
    const child = spawn('node', [...cli, 'probes', '--candidates', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    child.stderr.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.equal(code, 2);
  });

  it('usage errors exit with 2, and --help documents the exit codes', async () => {
    const unknown = await fails(['doctor', '--bogus']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^error: unknown option '--bogus'/);
    const help = await run('node', [...cli, '--help']);
    assert.match(help.stdout, /Exit codes:\n {2}0 {4}success;.*\n {2}1 {4}bad input/);
    const sub = await run('node', [...cli, 'stats', '--help']);
    assert.match(sub.stdout, /Exit codes:/);
  });

  it('refuses --candidates outside 2..1000 and a negative --users before any work', async () => {
    for (const [opt, v, why] of [
      ['--candidates', '0', '--candidates must be an integer from 2 to 1000, got "0"'],
      ['--candidates', '100000', '--candidates must be an integer from 2 to 1000, got "100000"'],
      ['--users', '-5', '--users must be a non-negative integer, got "-5"'],
      ['--kcore', '-1', '--kcore must be a non-negative integer, got "-1"'],
    ]) {
      const e = await fails(['probes', '--data', inter, opt, v]);
      assert.equal(e.code, 2, `${opt} ${v}`);
      assert.match(e.stderr.split('\n')[0], new RegExp(`^error: option '${opt} <[a-zA-Z]+>' argument '${v}' is invalid\\. ${why.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
    }
  });

  it('refuses more candidates than the catalogue holds, exit code 1', async () => {
    const why = 'evorec: --candidates 15 exceeds the catalogue: 10 items after cleaning (a set holds the positive and 14 items the user never touched)\n';
    for (const cmd of [['probes'], ['prepare', '--out', join(dir, 'never'), '--quiet']]) {
      const e = await fails([...cmd, '--data', dir, '--candidates', '15']);
      assert.equal(e.code, 1, cmd[0]);
      assert.equal(e.stderr, why, cmd[0]);
    }
  });

  it('a --kcore that removes everything says so in one line, exit code 1', async () => {
    const e = await fails(['prepare', '--data', inter, '--kcore', '1000000', '--out', join(dir, 'never'), '--quiet']);
    assert.equal(e.code, 1);
    assert.equal(e.stderr, 'evorec: the k-core filter (--kcore 1000000) removed all 200 interactions: the most active user has 5 interactions, the most popular item 20\n');
  });

  it('a timestamp of 1e300 names the file, line and field', async () => {
    const bad = fixture(dir, 'huge.csv', 'user_id,item_id,timestamp\nu1,i1,1\nu1,i2,1e300\n');
    const e = await fails(['stats', '--data', bad]);
    assert.equal(e.code, 1);
    assert.equal(
      e.stderr,
      `evorec: ${bad}:3: field "timestamp": not a decimal number ("1e300"): timestamps are Unix seconds, written as digits with an optional fraction (1388534400 or 1388534400.5)\n`,
    );
  });

  it('an invalid tokenizer.json with --text is one line, exit code 1', async () => {
    const folder = join(dir, 'badtok');
    await saveModelFolder(folder, new Decoder(decoderPreset('tiny', { vocabSize: 50 }), { seed: 3 }));
    fixture(folder, 'tokenizer.json', '{"model": 3}');
    const e = await fails(['inspect', '--model', folder, '--text', 'hello']);
    assert.equal(e.code, 1);
    assert.equal(e.stderr, `evorec: ${join(folder, 'tokenizer.json')}: tokenizer.json field "model" is missing or not an object\n`);
  });

  it('refuses a model folder with a NaN weight, naming the tensor', async () => {
    const folder = join(dir, 'nan');
    const m = new Decoder(decoderPreset('tiny', { vocabSize: 50 }), { seed: 4 });
    m.params[HF_KEYS.norm].data[3] = NaN;
    await saveModelFolder(folder, m);
    const e = await fails(['inspect', '--model', folder, '--tokens', '1,2']);
    assert.equal(e.code, 1);
    assert.equal(e.stderr, `evorec: ${join(folder, 'model.safetensors')}: tensor "${HF_KEYS.norm}": NaN at index 3 (non-finite weights give NaN logits)\n`);
  });

  it('sasrec and evaluate print their results as JSON with --json', async () => {
    const out = join(dir, 'sasrec');
    const { stdout } = await run('node', [...cli, 'sasrec', ...split, '--epochs', '1', '--hidden', '8', '--blocks', '1', '--out', out, '--json']);
    const r = JSON.parse(stdout);
    assert.equal(r.out, out);
    assert.ok(r.training.epochs >= 1);
    assert.deepEqual(Object.keys(r.results), ['matched', 'uniform', 'full']);
    assert.equal(r.results.matched.sasrec.groups.all.users > 0, true);
    const ev = JSON.parse((await run('node', [...cli, 'evaluate', ...split, '--model', out, '--json'])).stdout);
    assert.deepEqual(Object.keys(ev), ['model', 'period', 'results']);
    assert.deepEqual(ev.results.matched.sasrec.groups.all.metrics, r.results.matched.sasrec.groups.all.metrics);
  });

  it('a broken LLMRec folder is one line, exit code 1, not an internal error', async () => {
    const folder = join(dir, 'badllmrec');
    mkdirSync(folder);
    fixture(folder, 'config.json', '{"model_type": "qwen2"}');
    fixture(folder, 'llmrec.json', '{"format": "x"}');
    const e = await fails(['evaluate', ...split, '--model', folder]);
    assert.equal(e.code, 1);
    assert.equal(e.stderr, `evorec: ${join(folder, 'llmrec.json')}: field "format": expected "evorec-llmrec/1", got "x"\n`);
  });

  it('report --json prints the experiment\'s results.json instead of the tables', async () => {
    const out = join(dir, 'report');
    mkdirSync(out);
    copyFileSync(join(import.meta.dirname, '..', '..', 'docs', 'results', 'beauty-600-users-lora-base', 'results.json'), join(out, 'results.json'));
    const { stdout } = await run('node', [...cli, 'report', '--out', out, '--json'], { maxBuffer: 64 << 20 });
    const r = JSON.parse(stdout);
    assert.equal(r.format, 'evorec-experiment-seeds/1');
    assert.deepEqual(r, JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')));
  });

  it('report on a results.json without a finished seed: one line naming the field, exit code 1 (it was a stack trace, exit 3)', async () => {
    const out = join(dir, 'report-empty');
    mkdirSync(out);
    fixture(out, 'results.json', JSON.stringify({ format: 'evorec-experiment-seeds/1', seeds: [], runs: [] }));
    const e = await fails(['report', '--out', out]);
    assert.equal(e.code, 1);
    assert.equal(e.stderr, `evorec: ${join(out, 'results.json')}: field "runs": no finished seed to report (run evorec experiment until a seed finishes)\n`);
  });

  it('train-base --json, then --tune lora over the fully tuned run in the same --out: one line, no stack trace', async () => {
    const { tokenizer } = trainTokenizer([...NAMES, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 300 });
    const backbone = join(dir, 'backbone');
    await saveModelFolder(backbone, new Decoder(decoderPreset('tiny', { vocabSize: tokenizer.vocabSize }), { seed: 1 }), { tokenizer });
    const out = join(dir, 'base');
    const common = ['train-base', ...split, '--backbone', backbone, '--valid-users', '10', '--eval-users', '0', '--out', out];
    const full = JSON.parse((await run('node', [...cli, ...common, '--tune', 'full', '--json'])).stdout);
    assert.equal(full.out, out);
    assert.equal(full.training.tune, 'full');
    assert.deepEqual(full.results, JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).results);
    const e = await fails([...common, '--tune', 'lora']);
    assert.equal(e.code, 1);
    assert.equal(
      e.stderr,
      `evorec: ${join(out, 'train.ckpt')}: this --out holds the checkpoint of a run that trains the whole backbone, not LoRA adapters (--tune lora); use a new --out, or delete the checkpoint to start over\n`,
    );
  });
});
