/**
 * Recommender benchmarks (part of `npm run bench`):
 * - `prepare` on the full Beauty data;
 * - LLMRec evaluation throughput: users per second ranking 20 candidates with the `small` preset
 *   (randomly initialised: the cost does not depend on the weights), KV-cached shared prompts;
 * - LLMRec training throughput: LmTrainer steps (forward, backward, AdamW) on trainLLMRec's batches of 16
 *   right-padded prompt + answer sequences, LoRA r16 (dropout 0.05) on all seven projections with the base
 *   frozen, and full fine-tuning (every base weight, no adapter);
 * - LLMRec exact full-catalogue scoring, seconds per user, chunked and through the answers' trie
 *   (bench/full-catalogue.ts);
 * - SASRec evaluation throughput on the same users.
 * Run alone: node --import tsx bench/recommenders.ts   (BENCH_USERS, default 200; BENCH_STEPS, default 12;
 * BENCH_FULL_USERS, default 2, 0 skips the full-catalogue timing (about a minute per user and path);
 * BENCH_SKIP_PREPARE=1 skips the prepare timing; BENCH_PRESETS, default `small`, e.g. `small,deep` adds the
 * 8-layer preset). The machine may be shared: each figure is printed with the 1-minute load average and the
 * training lines with the process CPU time per step (all threads; less sensitive to the load than wall
 * time); compare figures taken at a similar load, or interleave runs.
 */
import { loadavg } from 'node:os';
import { CandidateSampler } from '../src/data/candidates.js';
import { loadSplit } from '../src/data/prepare.js';
import { decoderPreset, type DecoderPresetName } from '../src/io/hf-config.js';
import { LLMRec } from '../src/models/llmrec.js';
import { llmrecBatches } from '../src/models/llmrec-train.js';
import { PromptBuilder } from '../src/models/prompt.js';
import { SASRec } from '../src/models/sasrec.js';
import { Decoder } from '../src/nn/decoder.js';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { LmTrainer } from '../src/train/lm-trainer.js';
import { benchFullCatalogue, formatFullCatalogue } from './full-catalogue.js';
import { benchPrepare } from './prepare.js';

const users = Number(process.env.BENCH_USERS ?? 200);
/** The 1-minute load average, printed with every figure: the machine may be shared. */
const load = (): string => `[load ${loadavg()[0].toFixed(1)}]`;

if (!process.env.BENCH_SKIP_PREPARE) {
  const prep = await benchPrepare(2);
  console.log(`prepare (Beauty, full data, T=3): best of 2 ${prep.bestSeconds.toFixed(2)} s`);
}
const steps = Number(process.env.BENCH_STEPS ?? 12);
const fullUsers = Number(process.env.BENCH_FULL_USERS ?? 2);

const { split } = await loadSplit({ data: 'beauty' });
const test = split.periods[0].test.slice(0, users);
const cs = new CandidateSampler(split);
const cands = test.map((s) => cs.candidates(s, 0, 'test'));
const { tokenizer } = trainTokenizer(split.dataset.titles, { vocabSize: 8000 });

const presets = (process.env.BENCH_PRESETS ?? 'small').split(',') as DecoderPresetName[];
for (const preset of presets) {
  const decoder = new Decoder(decoderPreset(preset, { vocabSize: tokenizer.vocabSize }), { seed: 1 });
  decoder.addAdapter('default', { r: 16, alpha: 32, dropout: 0.05 }, { freezeBase: true });
  const model = new LLMRec(decoder, new PromptBuilder(tokenizer, split.dataset.titles));
  const hist = test.map((s) => split.history(s, 10));
  model.score(hist.slice(0, 8), cands.slice(0, 8)); // warm-up
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  model.score(hist, cands);
  const secs = (performance.now() - t0) / 1000;
  const cu = process.cpuUsage(c0);
  const cpuSecs = (cu.user + cu.system) / 1e6; // every thread of the process: the kernels' and V8's
  const promptTokens = hist.reduce((a, h) => a + model.prompts.prompt(h).length, 0) / hist.length;
  console.log(
    `LLMRec evaluation (${preset} preset, ${decoder.numParameters().toLocaleString('en-US')} parameters + LoRA r16, 20 candidates, ` +
      `${promptTokens.toFixed(0)} prompt tokens on average): ${(users / secs).toFixed(1)} users/s (${users} users in ${secs.toFixed(1)} s, ${cpuSecs.toFixed(1)} CPU s) ${load()}`,
  );

  if (fullUsers > 0) console.log(formatFullCatalogue(benchFullCatalogue(model, split, test.slice(0, fullUsers)), fullUsers, preset));

  const train = split.periods[0].train.slice(0, 16 * steps);
  const batches = llmrecBatches(model, train, (s) => split.history(s, 10), 16);
  const tokens = batches.reduce((a, b) => a + b.batch * b.seqLen, 0) / batches.length;
  /** Steps per second (median step) and process CPU seconds per step (mean). */
  const timeSteps = (dec: Decoder): { sps: number; cpu: number } => {
    const trainer = new LmTrainer(dec, { lr: 1e-4, totalSteps: batches.length + 1, warmupSteps: 0, schedule: 'constant' });
    // Warm-up on the largest batch: trainLLMRec shuffles its batches, so after the largest one every step
    // finds its arena buffers (steady state). Warming up on the first of these length-sorted batches made
    // every later, larger step fault in fresh pages instead (about 30% of a full fine-tuning step).
    trainer.trainStep(batches.reduce((a, b) => (b.batch * b.seqLen > a.batch * a.seqLen ? b : a)));
    const times: number[] = [];
    const c0 = process.cpuUsage();
    for (const b of batches) {
      const t1 = performance.now();
      trainer.trainStep(b);
      times.push(performance.now() - t1);
    }
    const c = process.cpuUsage(c0);
    times.sort((a, b) => a - b);
    return { sps: 1000 / times[times.length >> 1], cpu: (c.user + c.system) / 1e6 / batches.length };
  };
  const report = (what: string, { sps, cpu }: { sps: number; cpu: number }) =>
    console.log(
      `LLMRec training (${preset} preset, ${what}, batches of 16, ${tokens.toFixed(0)} padded tokens per batch on average): ` +
        `${sps.toFixed(2)} steps/s = ${(16 * sps).toFixed(1)} samples/s (median of ${batches.length} steps), ${cpu.toFixed(3)} CPU s/step ${load()}`,
    );
  report('LoRA r16 on 7 projections', timeSteps(decoder));
  // Full fine-tuning: every base weight trains (a fresh decoder, no adapter).
  report('full fine-tuning', timeSteps(new Decoder(decoderPreset(preset, { vocabSize: tokenizer.vocabSize }), { seed: 1 })));
}

const sasrec = new SASRec({ numItems: split.dataset.numItems });
const t1 = performance.now();
sasrec.score(test.map((s) => split.history(s, 50)), cands);
const s2 = (performance.now() - t1) / 1000;
console.log(`SASRec evaluation (d 64, 2 blocks, window 50, 20 candidates): ${(users / s2).toFixed(0)} users/s`);
