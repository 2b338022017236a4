/**
 * What each stage costs on a Hugging Face folder: the committed tiny Qwen2 fixture
 * (src/io/fixtures/qwen2-tiny-hf) copied as a user's folder, run through the commands users run,
 * with wall time per sample / user / request, tokens per example, forward FLOPs per token, and the
 * scaled figure for Qwen2-0.5B (docs/backbone.md, "What a Qwen2-0.5B folder costs").
 *
 *   node --import tsx bench/hf-stages.ts [--users 200] [--samples 200] [--eval-users 100]
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixture, tempDir } from '../src/data/test-utils/tmp.js';
import { PromptBuilder } from '../src/models/prompt.js';
import { loadModelFolder } from '../src/nn/checkpoint-folder.js';
import { forwardFlopsPerToken, QWEN2_0_5B } from '../src/nn/forward-bench.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const USERS = arg('--users', 200);
const SAMPLES = arg('--samples', 200);
const EVAL_USERS = arg('--eval-users', 100);
const H = 3;
const CANDIDATES = 5;
const NAMES = ['red apple', 'green pear', 'blue plum', 'gold melon', 'pink peach', 'black grape', 'white lime', 'brown fig', 'gray kiwi', 'tan date'];
const FIXTURE = fileURLToPath(new URL('../src/io/fixtures/qwen2-tiny-hf/', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

const dir = tempDir('evorec-hf-stages-');
const rows = ['user_id,item_id,timestamp'];
let ts = 1_700_000_000;
for (let round = 0; round < 4; round++) {
  for (let u = 0; u < USERS; u++) {
    if (round > 0 && (u + round) % 4 === 0) continue;
    for (let j = 0; j < 3; j++) rows.push(`u${u},i${(u * 7 + round * 3 + j) % NAMES.length},${ts++}`);
  }
}
fixture(dir, 'interactions.csv', rows.join('\n') + '\n');
fixture(dir, 'items.csv', 'item_id,title\n' + NAMES.map((n, k) => `i${k},${n}`).join('\n') + '\n');
const backbone = join(dir, 'Qwen2-tiny');
cpSync(FIXTURE, backbone, { recursive: true });
const common = ['--data', dir, '--periods', '2', '--base', '0.5', '--history', String(H), '--candidates', String(CANDIDATES), '--quiet', '--threads', '1'];
const cli = (args: string[]) => execFileSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });

// Tokens per training example and per scored user (prompt once + every candidate's answer).
const { model, tokenizer } = await loadModelFolder(backbone);
const pb = new PromptBuilder(tokenizer!, NAMES, { history: H });
let exTokens = 0;
let userTokens = 0;
for (let i = 0; i < 100; i++) {
  const hist = [i % 10, (i * 3 + 1) % 10, (i * 7 + 2) % 10];
  exTokens += pb.example(hist, (i + 5) % 10).ids.length;
  userTokens += pb.prompt(hist).length;
  for (let c = 0; c < CANDIDATES; c++) userTokens += pb.answer((i + c) % 10).length;
}
exTokens /= 100;
userTokens /= 100;
const flopsTiny = forwardFlopsPerToken(model.config, 128);
const flops05 = forwardFlopsPerToken(QWEN2_0_5B, 128);

const t0 = performance.now();
const out = join(dir, 'llmrec');
const tb = JSON.parse(cli(['train-base', ...common, '--backbone', backbone, '--tune', 'lora', '--lora-rank', '16', '--max-samples', String(SAMPLES), '--valid-users', '10', '--evals-per-epoch', '1', '--eval-users', String(EVAL_USERS), '--calibration', 'prior', '--out', out, '--json']));
const trainBaseWall = (performance.now() - t0) / 1000;
const trainSec = tb.training.training.seconds as number;
const samples = tb.training.trainSamples as number;
const evalUsers = (tb.results.matched.llmrec.groups.all.users as number) + (tb.results.uniform.llmrec.groups.all.users as number);

const t1 = performance.now();
cli(['evaluate', ...common, '--model', out, '--eval-users', String(EVAL_USERS), '--out', join(dir, 'again.json')]);
const evaluateWall = (performance.now() - t1) / 1000;

const t2 = performance.now();
const exp = join(dir, 'exp');
cli(['experiment', ...common, '--backbone', backbone, '--strategies', 'static,evorec', '--lora-rank', '16', '--sasrec-epochs', '1', '--eval-users', String(EVAL_USERS), '--valid-users', '10', '--train-seeds', '1', '--out', exp]);
const experimentWall = (performance.now() - t2) / 1000;
const updates = (JSON.parse(readFileSync(join(exp, 'results.json'), 'utf8')).runs[0].updates as { strategy: string; period: number; seconds: number; report: { trainSamples: number; steps: number } }[]).filter((u) => u.strategy === 'evorec');

// serve: one process, the trained folder, 30 requests of 5 given candidates.
const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve', '--host', '127.0.0.1', '--port', '0', '--db', join(dir, 'serve.db'), '--model', out, '--token', 'bench-token-0123456789', '--models-root', dir, '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise<string>((resolve) => {
  let s = '';
  proc.stdout!.on('data', (d: Buffer) => {
    s += d.toString();
    const m = /listening on (http:\/\/\S+)/.exec(s);
    if (m) resolve(m[1]);
  });
});
const headers = { authorization: 'Bearer bench-token-0123456789', 'content-type': 'application/json' };
const post = (path: string, body: unknown, method = 'POST') => fetch(url + path, { method, headers, body: JSON.stringify(body) }).then((r) => r.json());
await post('/v1/items', { items: NAMES.map((title, k) => ({ id: `i${k}`, title })) }, 'PUT');
const log = [];
for (let j = 0; j < 4; j++) for (let u = 0; u < 30; u++) log.push({ id: `e${u}-${j}`, user: `u${u}`, item: `i${(u + j) % 10}`, timestamp: 1_800_000_000 + j * 100 + u });
await post('/v1/interactions', { interactions: log });
await post('/v1/recommendations', { user: 'u0', k: 5, candidates: ['i0', 'i1', 'i2', 'i3', 'i4'] }); // warm-up
const t3 = performance.now();
for (let u = 1; u <= 30; u++) await post('/v1/recommendations', { user: `u${u % 30}`, k: 5, candidates: ['i5', 'i6', 'i7', 'i8', 'i9'] });
const serveMs = (performance.now() - t3) / 30;
proc.kill('SIGTERM');

const factor = flops05 / flopsTiny;
const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
const report = {
  machine: `load average ${load} at the end`,
  fixture: { flopsPerToken: flopsTiny, tokensPerExample: exTokens, tokensPerUser: userTokens, historyH: H, candidates: CANDIDATES },
  qwen2_05b: { flopsPerToken: flops05, factor },
  trainBase: { wallSeconds: trainBaseWall, trainSeconds: trainSec, samples, msPerSample: (1000 * trainSec) / samples, usPerToken: (1e6 * trainSec) / samples / exTokens, evalSeconds: tb.evalSeconds, evalUserViews: evalUsers, msPerUserView: (1000 * tb.evalSeconds) / evalUsers },
  evaluate: { wallSeconds: evaluateWall },
  experiment: { wallSeconds: experimentWall, evorecUpdates: updates.map((u) => ({ period: u.period, seconds: u.seconds, trainSamples: u.report.trainSamples, msPerSample: (1000 * u.seconds) / Math.max(1, u.report.trainSamples) })) },
  serve: { msPerRequest: serveMs, candidates: 5 },
};
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
