/**
 * Pretraining of the default backbone (`evorec pretrain`): since no pretrained weights can be
 * downloaded, a decoder preset is trained from scratch by causal-LM training on the catalogue's text.
 *
 * Corpus (domain-adaptive pretraining, docs/backbone.md): one document per item title, plus one per
 * training sample of the base period P0: the sample's history titles and its target title, one title
 * per line. 2% of the documents (seeded shuffle) are held out for validation perplexity.
 * A byte-level BPE tokenizer (vocab = the preset's) is trained on the training documents first.
 * Documents are tokenised, joined with <|endoftext|> and packed into fixed-length sequences.
 *
 * Output `<out>/`: config.json, model.safetensors, tokenizer.json (+ tokenizer_config.json) — a
 * Hugging Face folder — plus `trainer-state.ckpt` (parameters, AdamW moments, step: `--resume`
 * continues from it) and `pretrain-log.json` (settings, evaluations, timings).
 */
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Rng, setThreads } from '../core/index.js';
import { loadSplit } from '../data/prepare.js';
import type { DataSourceOptions } from '../data/source.js';
import { decoderPreset, type DecoderPresetName, writeJsonAtomic } from '../io/index.js';
import { Decoder } from '../nn/decoder.js';
import { saveModelFolder } from '../nn/checkpoint-folder.js';
import { loadTokenizer, trainTokenizer, type HfTokenizer } from '../tokenizer/index.js';
import { LmTrainer, type LmBatch } from './lm-trainer.js';

export interface PretrainOptions {
  /** Dataset (default the embedded Beauty preset). */
  source?: DataSourceOptions;
  preset?: DecoderPresetName;
  /** Optimiser steps (default: DEFAULT_PRETRAIN_STEPS of the preset); `epochs` overrides. */
  steps?: number;
  /** Passes over the packed training sequences (alternative to steps). */
  epochs?: number;
  batch?: number;
  seqLen?: number;
  lr?: number;
  /** Warm-up steps (default 5% of the steps, at most 200). */
  warmupSteps?: number;
  weightDecay?: number;
  seed?: number;
  out: string;
  resume?: boolean;
  /** Share of documents held out for validation (default 0.02). */
  valFraction?: number;
  /** Evaluate every n steps on `evalSequences` held-out sequences (default: 10 times per run). */
  evalEvery?: number;
  evalSequences?: number;
  /** Save model folder + trainer state every n steps (default: 5 times per run). */
  checkpointEvery?: number;
  /** Use these documents instead of building the corpus from `source` (see pretrainCorpus). */
  documents?: readonly string[];
  /** Use only the first n P0 training samples (and the titles of their items): small slices for tests. */
  maxSamples?: number;
  /** Stop (with a checkpoint) once this step is reached, e.g. to split a run into sessions; `resume` continues. */
  stopAfter?: number;
  /** Matrix-product threads. */
  threads?: number;
  onProgress?: (stage: string, done: number, total: number) => void;
  log?: (line: string) => void;
}

export interface PretrainResult {
  out: string;
  /** Planned steps (the schedule's length). */
  steps: number;
  /** Steps done so far (< steps after stopAfter). */
  completedSteps: number;
  /** Step the run started from (> 0 after --resume). */
  startStep: number;
  trainTokens: number;
  valTokens: number;
  /** Final validation loss and perplexity over every held-out sequence. */
  valLoss: number;
  valPerplexity: number;
  /** Train losses (mean of each logging window) and periodic evaluations. */
  history: { step: number; trainLoss: number; valLoss?: number; valPerplexity?: number; lr: number }[];
  wallSeconds: number;
  /** Training loop only (excludes data, tokenizer, final evaluation). */
  trainSeconds: number;
  stepsPerSecond: number;
  tokensPerSecond: number;
}

/** Default steps per preset (small: about 10-15 minutes on 2 cores at batch 16 x 128). */
export const DEFAULT_PRETRAIN_STEPS: Record<DecoderPresetName, number> = { tiny: 200, small: 1000, deep: 1500, base: 1500 };

export const STATE_FILE = 'trainer-state.ckpt';
export const LOG_FILE = 'pretrain-log.json';

/** The pretraining documents: titles, then P0 training samples as title sequences. */
export async function pretrainCorpus(source: DataSourceOptions, maxSamples?: number): Promise<string[]> {
  const { split } = await loadSplit(source);
  const titles = split.dataset.titles;
  const samples = maxSamples ? split.periods[0].train.slice(0, maxSamples) : split.periods[0].train;
  const docs: string[] = [];
  const items = new Set<number>();
  if (maxSamples) for (const s of samples) for (const it of [...split.history(s), s.item]) items.add(it);
  titles.forEach((t, i) => {
    if (t && (!maxSamples || items.has(i))) docs.push(t);
  });
  for (const s of samples) {
    const seq = [...split.history(s), s.item].map((i) => titles[i]).filter((t) => t);
    if (seq.length > 1) docs.push(seq.join('\n'));
  }
  return docs;
}

/** Tokenise documents, append eos to each, and cut the stream into sequences of `seqLen`. */
export function packDocuments(docs: readonly string[], tok: HfTokenizer, seqLen: number): Int32Array[] {
  const eos = tok.specialIds.eos;
  const stream: number[] = [];
  const seqs: Int32Array[] = [];
  for (const d of docs) {
    for (const id of tok.encode(d)) stream.push(id);
    stream.push(eos);
    while (stream.length >= seqLen) seqs.push(Int32Array.from(stream.splice(0, seqLen)));
  }
  return seqs;
}

function batchOf(seqs: readonly Int32Array[], T: number): LmBatch {
  const ids = new Int32Array(seqs.length * T);
  seqs.forEach((s, i) => ids.set(s, i * T));
  return { ids, labels: ids, batch: seqs.length, seqLen: T };
}

export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const t0 = Date.now();
  const log = o.log ?? (() => {});
  const progress = o.onProgress ?? (() => {});
  const presetName = o.preset ?? 'small';
  const seed = o.seed ?? 0;
  const batch = o.batch ?? 16;
  const seqLen = o.seqLen ?? 128;
  const lr = o.lr ?? 2e-3;
  const out = path.resolve(o.out);
  if (o.threads) setThreads(o.threads);
  const base = decoderPreset(presetName);
  if (seqLen > base.maxPositionEmbeddings) throw new RangeError(`--seq-len ${seqLen} exceeds the preset's context ${base.maxPositionEmbeddings}`);
  const stateFile = path.join(out, STATE_FILE);
  const resume = o.resume === true;
  if (resume && !existsSync(stateFile)) throw new RangeError(`--resume: no ${STATE_FILE} in ${out}`);
  await fs.mkdir(out, { recursive: true });

  // 1. corpus and split
  progress('corpus', 0, 1);
  const docs = o.documents ? [...o.documents] : await pretrainCorpus(o.source ?? { data: 'beauty' }, o.maxSamples);
  const rng = new Rng(seed);
  rng.shuffle(docs);
  const nVal = Math.max(1, Math.round(docs.length * (o.valFraction ?? 0.02)));
  const valDocs = docs.slice(0, nVal);
  const trainDocs = docs.slice(nVal);
  progress('corpus', 1, 1);

  // 2. tokenizer (reused on resume so that ids stay the same)
  let tokenizer: HfTokenizer;
  if (resume) tokenizer = await loadTokenizer(out);
  else {
    progress('tokenizer', 0, 1);
    tokenizer = trainTokenizer(trainDocs, { vocabSize: base.vocabSize, modelMaxLength: base.maxPositionEmbeddings }).tokenizer;
    await tokenizer.save(out);
    progress('tokenizer', 1, 1);
  }
  if (tokenizer.vocabSize > base.vocabSize) throw new RangeError(`tokenizer has ${tokenizer.vocabSize} ids, preset vocabulary ${base.vocabSize}`);
  const config = decoderPreset(presetName, { eosTokenId: tokenizer.specialIds.eos, padTokenId: tokenizer.specialIds.pad });

  // 3. packed sequences
  progress('tokenize', 0, 1);
  const train = packDocuments(trainDocs, tokenizer, seqLen);
  const val = packDocuments(valDocs, tokenizer, seqLen);
  progress('tokenize', 1, 1);
  if (train.length < batch) throw new RangeError(`corpus too small: ${train.length} sequences of ${seqLen} tokens for batch ${batch}`);
  if (val.length === 0) throw new RangeError('validation split too small for one sequence (lower --seq-len or raise the data)');
  const steps = o.epochs !== undefined ? Math.max(1, Math.ceil((o.epochs * train.length) / batch)) : (o.steps ?? DEFAULT_PRETRAIN_STEPS[presetName]);
  log(`corpus: ${docs.length} documents (${trainDocs.length} train, ${valDocs.length} validation); ${train.length} x ${seqLen} train tokens, ${val.length} x ${seqLen} validation; ${steps} steps of ${batch} sequences (${((steps * batch) / train.length).toFixed(2)} epochs)`);

  // 4. model and trainer
  const model = new Decoder(config, { seed });
  const trainer = new LmTrainer(model, {
    lr,
    totalSteps: steps,
    warmupSteps: o.warmupSteps ?? Math.min(200, Math.ceil(steps * 0.05)),
    weightDecay: o.weightDecay ?? 0.1,
    betas: [0.9, 0.95],
    clipNorm: 1,
  });
  const settings = { preset: presetName, seed, batch, seqLen, lr, steps, vocab: config.vocabSize, maxSamples: o.maxSamples ?? null };
  let history: PretrainResult['history'] = [];
  let startStep = 0;
  if (resume) {
    const meta = trainer.load(stateFile);
    const s = meta.settings as typeof settings;
    for (const k of ['preset', 'seed', 'batch', 'seqLen', 'steps', 'maxSamples'] as const) {
      if (s && s[k] !== settings[k]) throw new RangeError(`--resume: ${k} differs from the saved run (${JSON.stringify(s[k])} vs ${JSON.stringify(settings[k])})`);
    }
    history = (meta.history as PretrainResult['history']) ?? [];
    startStep = trainer.step;
    log(`resumed at step ${startStep}`);
  }

  // Deterministic batch order: epoch e visits the sequences in a permutation seeded by (seed, e).
  const perms = new Map<number, Int32Array>();
  const perm = (e: number): Int32Array => {
    let p = perms.get(e);
    if (!p) {
      const a = Array.from({ length: train.length }, (_, i) => i);
      new Rng(seed * 7919 + e + 1).shuffle(a);
      p = Int32Array.from(a);
      perms.clear();
      perms.set(e, p);
    }
    return p;
  };
  const batchAt = (step: number): LmBatch => {
    const seqs: Int32Array[] = [];
    for (let i = step * batch; i < (step + 1) * batch; i++) seqs.push(train[perm(Math.floor(i / train.length))[i % train.length]]);
    return batchOf(seqs, seqLen);
  };
  const evalSeqs = Math.min(val.length, o.evalSequences ?? 64);
  const evalOn = (n: number) => {
    const bs: LmBatch[] = [];
    for (let i = 0; i < n; i += batch) bs.push(batchOf(val.slice(i, Math.min(n, i + batch)), seqLen));
    return trainer.evaluate(bs);
  };
  const evalEvery = o.evalEvery ?? Math.max(1, Math.ceil(steps / 10));
  const ckptEvery = o.checkpointEvery ?? Math.max(1, Math.ceil(steps / 5));
  const checkpoint = async () => {
    await saveModelFolder(out, model, { tokenizer });
    trainer.save(stateFile, { settings, history });
  };

  const tTrain = Date.now();
  let windowLoss = 0, windowN = 0;
  progress('pretrain', trainer.step, steps);
  while (trainer.step < steps) {
    const r = trainer.trainStep(batchAt(trainer.step));
    if (!Number.isFinite(r.loss)) throw new RangeError(`pretrain: loss is ${r.loss} at step ${r.step} (lower --lr)`);
    windowLoss += r.loss;
    windowN++;
    progress('pretrain', r.step, steps);
    if (r.step % evalEvery === 0 || r.step === steps) {
      const ev = evalOn(evalSeqs);
      history.push({ step: r.step, trainLoss: windowLoss / windowN, valLoss: ev.loss, valPerplexity: ev.perplexity, lr: r.lr });
      log(`step ${r.step}/${steps}: train loss ${(windowLoss / windowN).toFixed(4)}, validation loss ${ev.loss.toFixed(4)} (perplexity ${ev.perplexity.toFixed(2)}), lr ${r.lr.toExponential(2)}`);
      windowLoss = 0;
      windowN = 0;
    }
    if (r.step % ckptEvery === 0 && r.step < steps) await checkpoint();
    if (o.stopAfter !== undefined && r.step >= o.stopAfter) break;
  }
  const trainSeconds = (Date.now() - tTrain) / 1000;
  await checkpoint();
  progress('validate', 0, 1);
  const final = evalOn(val.length);
  progress('validate', 1, 1);
  const done = trainer.step - startStep;
  const result: PretrainResult = {
    out,
    steps,
    completedSteps: trainer.step,
    startStep,
    trainTokens: train.length * seqLen,
    valTokens: final.tokens,
    valLoss: final.loss,
    valPerplexity: final.perplexity,
    history,
    wallSeconds: (Date.now() - t0) / 1000,
    trainSeconds,
    stepsPerSecond: trainSeconds > 0 ? done / trainSeconds : 0,
    tokensPerSecond: trainSeconds > 0 ? (done * batch * seqLen) / trainSeconds : 0,
  };
  await writeJsonAtomic(path.join(out, LOG_FILE), { settings, ...result });
  log(`validation perplexity ${final.perplexity.toFixed(2)} (loss ${final.loss.toFixed(4)}) over ${final.tokens} tokens; ${result.stepsPerSecond.toFixed(2)} steps/s, ${Math.round(result.tokensPerSecond)} tokens/s; wall ${result.wallSeconds.toFixed(0)} s`);
  return result;
}
