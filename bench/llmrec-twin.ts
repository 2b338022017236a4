/**
 * The LLMRec workload against a PyTorch twin (part of `npm run bench`; alone: `npm run bench:twin`),
 * on the same weights and the same token ids, in one run:
 *
 * (a) a LoRA training step (LmTrainer: forward with LoRA dropout, backward, clipping, AdamW) on each of
 *     trainLLMRec's batches (llmrecBatches: 16 right-padded prompt + answer sequences of the embedded
 *     Beauty data, H = 10, loss on the answer), small preset, LoRA r16 alpha 32 dropout 0.05 on all
 *     seven projections, base frozen; the median ms/step over the same batches;
 * (b) scoring 20 candidates per user after a shared prompt KV cache: ours through LLMRec.score (sum of
 *     the answer's log-probabilities, no calibration, 8 users per forward), the twin doing the same
 *     computation (bench/torch_llmrec.py); users/s.
 *
 * The twin reads our decoder's weights (safetensors) and the exact batches (JSON) from a temp dir, and
 * first checks that it computes what we compute on the first batch and the first 8 users: candidate
 * scores, the loss, the clipped gradients of every LoRA matrix, and the loss after one AdamW step (LoRA
 * dropout off for the check). LoRA B is random (std 0.02), not zero, so that the adapter path is
 * checked too; the cost does not depend on the weights. Ratios are ours / PyTorch in time (ms per step,
 * ms per user): below 1, ours is faster. Ours and PyTorch run at 1 and 2 threads, interleaved over
 * BENCH_ROUNDS rounds (default 3; median of the per-round figures), PyTorch in a child process per round.
 *
 * The bench checks which BLAS PyTorch runs on (bench/torch_blas.py): on the reference BLAS it prints no
 * ratio; when OpenBLAS picked CPU kernels older than the CPU (Prescott on a CPU it does not know), PyTorch
 * runs with OPENBLAS_CORETYPE forced (as bench/run.ts does for our OpenBLAS), and says so.
 *
 * Env: BENCH_TWIN_USERS (default 64), BENCH_TWIN_STEPS (batches, default 12), BENCH_ROUNDS,
 * BENCH_TWIN_THREADS (default 1,2), BENCH_TWIN_TORCH_THREADS (PyTorch's t:b = torch threads : OpenBLAS
 * threads, default 1:1, 2:2, 1:2), PYTHON, BENCH_OPENBLAS_CORETYPE ('none': PyTorch's own pick).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kernelInfo, Rng, setThreads } from '../src/core/index.js';
import { CandidateSampler } from '../src/data/candidates.js';
import { loadSplit } from '../src/data/prepare.js';
import { decoderPreset, encodeSafetensors, type TensorLike } from '../src/io/index.js';
import { LLMRec, type ScoreOptions } from '../src/models/llmrec.js';
import { llmrecBatches } from '../src/models/llmrec-train.js';
import { PromptBuilder } from '../src/models/prompt.js';
import { Decoder } from '../src/nn/decoder.js';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { LmTrainer, type LmTrainerOptions } from '../src/train/lm-trainer.js';
import { findPython, forcedCoretype, torchBlas, torchBlasCaveat } from './torch-env.js';

const here = dirname(fileURLToPath(import.meta.url));
const nUsers = Number(process.env.BENCH_TWIN_USERS ?? 64);
const nSteps = Number(process.env.BENCH_TWIN_STEPS ?? 12);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const threadList = (process.env.BENCH_TWIN_THREADS ?? '1,2').split(',').map(Number);
// PyTorch configurations: 't' (torch.set_num_threads and OpenBLAS threads t) or 't:b' (OpenBLAS b); the
// ratio at n threads is taken to the fastest configuration using n cores (max(t, b) = n)
// (default: each n of BENCH_TWIN_THREADS, and 1:2 beside 2, as torch's two OpenMP threads lose most on a busy machine)
const torchConfigs = (process.env.BENCH_TWIN_TORCH_THREADS ?? [...threadList.map(String), ...(threadList.includes(2) ? ['1:2'] : [])].join(',')).split(',').map((c) => {
  const [t, b] = c.split(':').map(Number);
  return { t, b: b ?? t, key: `${t}:${b ?? t}` };
});
const WARMUP = 1;
const PER = 8; // users per scoring forward (LLMRec.score's default)
const LORA = { r: 16, alpha: 32, dropout: 0.05 };
const TRAINER: LmTrainerOptions & { weightDecay: number; clipNorm: number; betas: [number, number] } = {
  lr: 1e-4, totalSteps: 1e9, warmupSteps: 0, schedule: 'constant', weightDecay: 0.01, clipNorm: 1, betas: [0.9, 0.999],
};
const SCORING: ScoreOptions = { reduction: 'sum', calibration: 'none', usersPerBatch: PER };

const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');
const median = (xs: number[]): number => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---------------------------------------------------------------------------------------------
// The workload

const { split } = await loadSplit({ data: 'beauty' });
const test = split.periods[0].test.slice(0, nUsers);
const cs = new CandidateSampler(split);
const cands = test.map((s) => cs.candidates(s, 0, 'test'));
const hist = test.map((s) => split.history(s, 10));
const { tokenizer } = trainTokenizer(split.dataset.titles, { vocabSize: 8000 });
const config = decoderPreset('small', { vocabSize: tokenizer.vocabSize });
const decoder = new Decoder(config, { seed: 1 });
const adapter = decoder.addAdapter('default', LORA, { freezeBase: true });
const rng = new Rng(7);
for (const p of adapter.pairs.values()) rng.fillNormal(p.B.data, 0.02);
const model = new LLMRec(decoder, new PromptBuilder(tokenizer, split.dataset.titles), { reduction: 'sum', calibration: 'none' });
const batches = llmrecBatches(model, split.periods[0].train.slice(0, 16 * nSteps), (s) => split.history(s, 10), 16);

console.log(`\nLLMRec twin bench — ${cpus().length} x ${cpus()[0]?.model ?? '?'}; load average ${load()}`);
console.log(`kernels: ${JSON.stringify(kernelInfo())}`);
const tokens = batches.reduce((a, b) => a + b.batch * b.seqLen, 0) / batches.length;
const promptTokens = hist.reduce((a, h) => a + model.prompts.prompt(h).length, 0) / hist.length;
console.log(
  `small preset (d ${config.hiddenSize}, ${config.numHiddenLayers} layers, ${config.numAttentionHeads}/${config.numKeyValueHeads} heads, ffn ${config.intermediateSize}, ` +
    `vocab ${config.vocabSize}), LoRA r${LORA.r} alpha ${LORA.alpha} dropout ${LORA.dropout} on 7 projections, base frozen; ` +
    `${batches.length} training batches of 16 (${tokens.toFixed(0)} padded tokens on average); ${nUsers} users x 20 candidates (${promptTokens.toFixed(0)} prompt tokens on average)`,
);

// ---------------------------------------------------------------------------------------------
// Our reference results for the twin's check (first batch, first 8 users; dropout off)

const verifyScores = model.score(hist.slice(0, PER), cands.slice(0, PER), SCORING).map((s) => Array.from(s));
const cfgDropout = adapter.config as { lora_dropout: number };
cfgDropout.lora_dropout = 0;
const vt = new LmTrainer(decoder, TRAINER);
const saved = vt.params.map((p) => p.data.slice());
const step0 = vt.trainStep(batches[0]);
const grads: Record<string, TensorLike> = {};
for (const [k, t] of vt.named) grads[k] = { shape: t.shape, data: t.grad! };
const gradsFile = encodeSafetensors(grads);
const loss1 = vt.evaluate([batches[0]]).loss;
vt.params.forEach((p, i) => {
  p.data.set(saved[i]);
  p.grad = null;
});
cfgDropout.lora_dropout = LORA.dropout;

const dir = mkdtempSync(join(tmpdir(), 'evorec-twin-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'weights.safetensors'), encodeSafetensors(Object.fromEntries(decoder.namedParameters().map(([k, t]) => [k, { shape: t.shape, data: t.data }]))));
writeFileSync(join(dir, 'grads.safetensors'), gradsFile);
writeFileSync(join(dir, 'data.json'), JSON.stringify({
  config,
  lora: LORA,
  trainer: { lr: TRAINER.lr, betas: TRAINER.betas, eps: 1e-8, weightDecay: TRAINER.weightDecay, clipNorm: TRAINER.clipNorm },
  warmup: WARMUP,
  batches: batches.map((b) => ({ batch: b.batch, seqLen: b.seqLen, ids: Array.from(b.ids), labels: Array.from(b.labels), mask: Array.from(b.attentionMask!) })),
  score: { usersPerBatch: PER, pad: model.padId, prompts: hist.map((h) => model.prompts.prompt(h)), answers: cands.map((c) => c.map((i) => model.prompts.answer(i))) },
  verify: { scores: verifyScores, loss0: step0.loss, gradNorm: step0.gradNorm, loss1 },
}));

// ---------------------------------------------------------------------------------------------
// Timing

interface Figures { trainMs: number; usersPerS: number; load: string }

function ours(threads: number): Figures {
  setThreads(threads);
  const l = load();
  const trainer = new LmTrainer(decoder, TRAINER);
  for (let i = 0; i < WARMUP; i++) trainer.trainStep(batches[i % batches.length]);
  const times: number[] = [];
  for (const b of batches) {
    const t0 = performance.now();
    trainer.trainStep(b);
    times.push(performance.now() - t0);
  }
  model.score(hist.slice(0, PER), cands.slice(0, PER), SCORING); // warm-up
  const t0 = performance.now();
  model.score(hist, cands, SCORING);
  const secs = (performance.now() - t0) / 1000;
  return { trainMs: median(times), usersPerS: nUsers / secs, load: l };
}

interface TwinRun { threads: number; blas_threads: number; train_ms: number[]; score_padded_s: number; score_packed_s: number }
interface TwinOut {
  blas: { kind: string; openblas: { core: string } | null };
  verify?: Record<string, number>;
  runs: TwinRun[];
  peak_rss_mb: number;
}

const py = findPython();
let torchEnv: Record<string, string> = {};
let caveat: string | null = 'PyTorch is not importable ($PYTHON, /usr/bin/python3, python3)';
if (py) {
  const b0 = torchBlas(py);
  const forced = b0?.kind === 'openblas' && b0.openblas ? forcedCoretype(b0.openblas.core) : null;
  if (forced) torchEnv = { OPENBLAS_CORETYPE: forced };
  const b = forced ? torchBlas(py, torchEnv) : b0;
  caveat = torchBlasCaveat(b);
  console.log(`${b?.describe ?? 'PyTorch BLAS: unknown'}; ${b?.gflops_512.toFixed(1) ?? '?'} GFLOP/s on 512^3 at 1 thread`);
  if (forced) console.log(`  (OpenBLAS picked ${b0!.openblas!.core} kernels on this CPU, ${b0!.gflops_512.toFixed(1)} GFLOP/s: PyTorch runs with OPENBLAS_CORETYPE=${forced})`);
  console.log(`  PyTorch threads: torch.set_num_threads(t), openblas_set_num_threads(b) for t:b in ${torchConfigs.map((c) => c.key).join(', ')}`);
}

function twin(verify: boolean): TwinOut | null {
  const r = spawnSync(py!, [join(here, 'torch_llmrec.py'), dir, torchConfigs.map((c) => c.key).join(','), verify ? '1' : '0'], {
    env: { ...process.env, ...torchEnv, OMP_NUM_THREADS: String(Math.max(...torchConfigs.map((c) => c.t))) }, encoding: 'utf8', maxBuffer: 1 << 26,
  });
  if (r.status !== 0) {
    console.error('PyTorch twin failed:', r.stderr.slice(-3000));
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TwinOut;
}

const oursRuns = new Map<number, Figures[]>();
const torchRuns = new Map<string, { trainMs: number; paddedUps: number; packedUps: number; load: string }[]>();
let verified: Record<string, number> | undefined;
for (let round = 0; round < rounds; round++) {
  for (const t of threadList) {
    const f = ours(t);
    oursRuns.set(t, [...(oursRuns.get(t) ?? []), f]);
  }
  if (!py) continue;
  const l = load();
  const out = twin(round === 0);
  if (!out) continue;
  if (out.verify) verified = out.verify;
  for (const r of out.runs) {
    const key = `${r.threads}:${r.blas_threads}`;
    torchRuns.set(key, [...(torchRuns.get(key) ?? []), { trainMs: median(r.train_ms), paddedUps: nUsers / r.score_padded_s, packedUps: nUsers / r.score_packed_s, load: l }]);
  }
}
setThreads(Math.max(...threadList));

// ---------------------------------------------------------------------------------------------
// Report

if (verified) {
  const v = verified;
  const e = (x: number): string => x.toExponential(1);
  console.log(
    `twin check (first batch, first ${PER} users, LoRA dropout off): candidate scores max |diff| ${e(v.score_max_abs_diff)} padded, ${e(v.score_packed_max_abs_diff)} packed ` +
      `(${v.scores_compared} sums of log-probs, |score| up to ${v.score_max_abs.toFixed(1)}); loss ${v.loss0_ours.toFixed(6)} ours, ${v.loss0.toFixed(6)} PyTorch ` +
      `(|diff| ${e(Math.abs(v.loss0 - v.loss0_ours))}); gradient norm ${v.grad_norm_ours.toFixed(5)} / ${v.grad_norm.toFixed(5)}; clipped LoRA gradients max |diff| ${e(v.grad_max_abs_diff)} ` +
      `(max |g| ${e(v.grad_max_abs)}); loss after one AdamW step |diff| ${e(Math.abs(v.loss1 - v.loss1_ours))}`,
  );
  const ok = v.score_max_abs_diff < 1e-3 && v.score_packed_max_abs_diff < 1e-3 && Math.abs(v.loss0 - v.loss0_ours) < 1e-4 && Math.abs(v.loss1 - v.loss1_ours) < 1e-4 && v.grad_max_abs_diff < 1e-3 * v.grad_max_abs;
  if (!ok) {
    caveat = 'the twin does not compute what we compute (see the check above)';
    console.log('  TWIN MISMATCH: no ratio');
  }
}
const f1 = (x: number): string => x.toFixed(1);
const ratio = (x: number): string => (caveat ? '-' : x.toFixed(2));
const loadsOf = (xs: { load: string }[]): string => xs.map((x) => x.load.split(' ')[0]).join('/') || '-';
console.log(`\n${'threads'.padEnd(8)}${'measure'.padEnd(30)}${'ours'.padStart(8)}${'PyTorch'.padStart(9)}  ${'ours/PyTorch (time)'.padStart(19)}  ${'PyTorch t:b'.padEnd(12)}1-min load (ours; PyTorch)`);
for (const n of threadList) {
  const o = oursRuns.get(n) ?? [];
  const oTrain = median(o.map((x) => x.trainMs));
  const oUps = median(o.map((x) => x.usersPerS));
  const cfgs = torchConfigs.filter((c) => Math.max(c.t, c.b) === n && torchRuns.has(c.key)).map((c) => {
    const p = torchRuns.get(c.key)!;
    return { key: c.key, p, train: median(p.map((x) => x.trainMs)), pad: median(p.map((x) => x.paddedUps)), pack: median(p.map((x) => x.packedUps)) };
  });
  const row = (what: string, a: number, b: number | null, r: number | null, cfg: string, l: string): void =>
    console.log(`${String(n).padEnd(8)}${what.padEnd(30)}${f1(a).padStart(8)}${(b === null ? '-' : f1(b)).padStart(9)}  ${(r === null ? '-' : ratio(r)).padStart(19)}  ${cfg.padEnd(12)}${l}`);
  const bestBy = (f: (c: (typeof cfgs)[number]) => number, low: boolean) => cfgs.slice().sort((x, y) => (low ? f(x) - f(y) : f(y) - f(x)))[0];
  const tr = bestBy((c) => c.train, true), pd = bestBy((c) => c.pad, false), pk = bestBy((c) => c.pack, false);
  row('training ms/step (median)', oTrain, tr?.train ?? null, tr ? oTrain / tr.train : null, tr?.key ?? '-', `${loadsOf(o)}; ${tr ? loadsOf(tr.p) : '-'}`);
  row('scoring users/s, padded twin', oUps, pd?.pad ?? null, pd ? pd.pad / oUps : null, pd?.key ?? '-', '');
  row('scoring users/s, packed twin', oUps, pk?.pack ?? null, pk ? pk.pack / oUps : null, pk?.key ?? '-', '');
}
if (torchConfigs.length > threadList.length) {
  console.log('every PyTorch configuration (t:b = torch threads : OpenBLAS threads): ' + torchConfigs.filter((c) => torchRuns.has(c.key)).map((c) => {
    const p = torchRuns.get(c.key)!;
    return `${c.key} ${f1(median(p.map((x) => x.trainMs)))} ms/step, ${f1(median(p.map((x) => x.paddedUps)))} / ${f1(median(p.map((x) => x.packedUps)))} users/s`;
  }).join('; '));
}
if (caveat) console.log(`no ratio: ${caveat}`);
console.log(`(medians of ${rounds} rounds; training: median of ${batches.length} steps per round after ${WARMUP} warm-up step; scoring: ${nUsers} users per round after an ${PER}-user warm-up)`);
