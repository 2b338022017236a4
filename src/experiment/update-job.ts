/**
 * EvoRec's Update step as a job for an external trainer (LLaMA-Factory), and the adapter that comes back.
 *
 * `exportUpdateJob` runs Forget and Locate for one period of an experiment run (as `evorecStrategy` does
 * before it trains) and writes what the Update needs, self-contained in one folder:
 *
 *   job.yaml                      LLaMA-Factory training config (`llamafactory-cli train job.yaml`, run in the folder)
 *   data/dataset_info.json        the two datasets, sharegpt format
 *   data/train.json, valid.json   the filtered training and validation prompts (sharegpt conversations)
 *   data/train.ids.jsonl, ...     the same examples as evorec's token ids (prompt and answer), one a line
 *   adapters/located/             PEFT adapter of t-1, the located layers only: the one the job trains
 *   adapters/frozen/              PEFT adapter of t-1, the other layers: merged into the weights, not trained
 *   model/                        the backbone (Hugging Face folder, hard-linked where possible)
 *   evorec-job.json               what the job is (run, seed, period, strategy, layers, settings, file hashes)
 *
 * `trainUpdateJob` is evorec's own trainer run on those files alone, standing in for LLaMA-Factory (the
 * round-trip test), and `importUpdatedAdapter` evaluates the adapter that comes back on the period's test
 * sets with the experiment's yardstick, beside the run's strategies, and can save it as an LLMRec folder
 * (a service version). Field names and sources of every file: docs/formats.md, "Update jobs".
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { NegativeSampler } from '../data/candidates.js';
import type { PeriodSplit, Sample } from '../data/periods.js';
import type { EvalResult } from '../eval/evaluate.js';
import { updateForPeriod } from '../evolve/period.js';
import { strategyEvaluator, validationSample, type ExperimentResults } from '../evolve/runner.js';
import { evorecForget, isEvorecStrategy, planEvorecUpdate, strategyRegistry, type EvoRecStrategy } from '../evolve/strategies.js';
import { LINEAR_MODULES, makeLoraConfig, readPeftAdapter, type PeftLoraConfig } from '../io/hf-folder.js';
import { validationNdcg3, type LLMRec } from '../models/llmrec.js';
import { saveLLMRec } from '../models/llmrec-io.js';
import { DEFAULT_LLMREC_TRAIN, trainExamples, type LLMRecTrainOptions, type LLMRecTrainResult, type TrainingExample } from '../models/llmrec-train.js';
import type { SASRec } from '../models/sasrec.js';
import { loadModelFolder } from '../nn/checkpoint-folder.js';
import { LoraAdapter, readAdapter, saveAdapter } from '../nn/lora.js';
import { tempName, writeFileAtomic } from '../util/fs.js';
import { experimentSplit, resolveExperimentOptions, runOptionsOf, sasrecPerPeriod, seedBaseModel, trainingSettings, type ExperimentHooks, type ResolvedExperimentOptions } from './experiment.js';

export const UPDATE_JOB_FORMAT = 'evorec-update-job/1';
export const JOB_FILE = 'evorec-job.json';
export const JOB_YAML = 'job.yaml';
/** Names of the two datasets in data/dataset_info.json. */
export const TRAIN_DATASET = 'evorec_train';
export const VALID_DATASET = 'evorec_valid';
/** Hugging Face files of a model folder that the job's model/ gets. */
const MODEL_FILES = /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|model\.safetensors|model-\d+-of-\d+\.safetensors|model\.safetensors\.index\.json)$/;

/** evorec-job.json: what an update job is, for the import and for the stand-in trainer. */
export interface UpdateJobManifest {
  format: typeof UPDATE_JOB_FORMAT;
  /** The experiment folder (absolute). */
  run: string;
  trainSeed: number;
  period: number;
  strategy: string;
  /** Layers whose LoRA the job trains (adapters/located), and the others (adapters/frozen). */
  layers: number[];
  frozenLayers: number[];
  located?: { votes: number[] };
  forgotten?: { users: number; items: number; considered: number };
  /** The training settings of evorec's in-process update (what job.yaml says in LLaMA-Factory's terms). */
  train: Pick<LLMRecTrainOptions, 'epochs' | 'lr' | 'batchSize' | 'warmup' | 'schedule' | 'weightDecay' | 'clipNorm' | 'seed'>;
  /** The adapter of t-1 as a whole (its PEFT LoraConfig): located + frozen make it up again. */
  lora: PeftLoraConfig;
  examples: { train: number; valid: number };
  /** How many examples' prompt and answer text, each tokenised whole, give evorec's ids (evorec assembles prompts from per-piece ids). */
  textMatchesIds: { train: { prompts: number; answers: number }; valid: { prompts: number; answers: number } };
  /** Every file of the job (relative path) with its SHA-256. */
  files: Record<string, string>;
}

/** An experiment run opened at period t for one EvoRec strategy: the model of t-1 and what the update sees. */
interface RunAtPeriod {
  o: ResolvedExperimentOptions;
  split: PeriodSplit;
  model: LLMRec;
  strategy: EvoRecStrategy;
  trainSeed: number;
  t: number;
  seedDir: string;
  /** The model folder the backbone was read from. */
  backboneDir: string;
  sasrec?: SASRec;
}

function evorecStrategyNamed(name: string): EvoRecStrategy {
  const s = strategyRegistry()[name];
  if (!s || !isEvorecStrategy(s)) {
    const names = Object.values(strategyRegistry()).filter(isEvorecStrategy).map((x) => x.name);
    throw new RangeError(`--strategy: "${name}" is not a strategy of the EvoRec family (${names.join(', ')})`);
  }
  if (s.evorec.lambda > 0) throw new RangeError(`--strategy: "${name}" adds the consistency term (KL to the previous model), which an external SFT trainer does not compute; export evorec or an ablation without it`);
  return s;
}

async function openRunAtPeriod(run: string, t: number, trainSeed: number | undefined, strategyName: string, hooks: ExperimentHooks): Promise<RunAtPeriod> {
  const o = resolveExperimentOptions(runOptionsOf(run));
  const strategy = evorecStrategyNamed(strategyName);
  const seed = trainSeed ?? o.firstTrainSeed;
  const seedDir = join(run, `seed-${seed}`);
  if (!existsSync(seedDir)) throw new RangeError(`${seedDir}: not found (--train-seed ${seed} was not run in ${run})`);
  const { split } = await experimentSplit(o);
  const T = split.numPeriods - 1;
  if (!Number.isInteger(t) || t < 1 || t > T) throw new RangeError(`--period: expected an incremental period from 1 to ${T}, got ${t}`);
  const model = await seedBaseModel(o, split, seed, seedDir, hooks, { train: false });
  const dec = model.decoder;
  let adapter: LoraAdapter;
  if (t === 1) adapter = dec.adapter('base').clone(strategy.name);
  else {
    const dir = join(seedDir, 'adapters', strategy.name, `p${t - 1}`);
    if (!existsSync(join(dir, 'adapter_config.json'))) throw new RangeError(`${dir}: not found (the model of P${t - 1}; run evorec experiment with --strategies ${strategy.name} on ${run} first)`);
    adapter = await readAdapter(dir, dec.config, strategy.name);
  }
  adapter.freeze();
  dec.attachAdapter(adapter, { freezeBase: true });
  dec.adapter('base').freeze();
  dec.setActiveAdapters(adapter.name);
  const sasrec = strategy.usesSasrec ? await sasrecPerPeriod(o, split, hooks.stage)(t) : undefined;
  const backboneDir = o.baseModel ? resolve(o.baseModel) : join(seedDir, 'base');
  return { o, split, model, strategy, trainSeed: seed, t, seedDir, backboneDir, sasrec };
}

/** A LoRA adapter holding only `layers`' pairs of `a` (PEFT layers_to_transform), named `name`. */
function layerSubset(a: LoraAdapter, layers: readonly number[], name: string): LoraAdapter {
  const config = makeLoraConfig({ ...a.config, layers_to_transform: [...layers], layers_pattern: 'layers', inference_mode: false });
  const out = new LoraAdapter(name, config, a.model);
  for (const [k, p] of a.pairs) if (layers.includes(p.layer)) out.pairs.set(k, p);
  return out;
}

/** One adapter from disjoint layer subsets (the inverse of `layerSubset`), with the whole adapter's config. */
function joinLayers(name: string, config: PeftLoraConfig, parts: readonly LoraAdapter[]): LoraAdapter {
  const model = parts[0].model;
  const out = new LoraAdapter(name, config, model);
  // Pairs in the canonical (layer, module) order, as an adapter made or read whole has them: the
  // parameters' order is the optimiser's and the gradient norm's summation order.
  for (let l = 0; l < model.numHiddenLayers; l++) {
    for (const m of LINEAR_MODULES) {
      const has = parts.filter((a) => a.get(l, m));
      if (has.length > 1) throw new RangeError(`adapters "${has[0].name}" and "${has[1].name}": layer ${l} ${m} is in both`);
      const p = has[0]?.get(l, m);
      if (p) out.pairs.set(`${l}.${m}`, p);
    }
  }
  return out;
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

function filesOf(root: string, dir = root, out: Record<string, string> = {}): Record<string, string> {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) filesOf(root, p, out);
    else if (relative(root, p) !== JOB_FILE) out[relative(root, p)] = sha256(p);
  }
  return out;
}

function linkModelFiles(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  let n = 0;
  for (const name of readdirSync(from)) {
    if (!MODEL_FILES.test(name) || !statSync(join(from, name)).isFile()) continue;
    try {
      linkSync(join(from, name), join(to, name));
    } catch {
      copyFileSync(join(from, name), join(to, name));
    }
    n++;
  }
  if (!existsSync(join(to, 'config.json'))) throw new RangeError(`${from}: no config.json (not a model folder)`);
  if (n === 0) throw new RangeError(`${from}: no model files`);
}

/** A float for YAML 1.1 readers (PyYAML, hence LLaMA-Factory): `4e-4` would be a string there, `4.0e-4` is a float. */
export class YamlFloat {
  constructor(readonly value: number) {}
  toString(): string {
    const v = this.value;
    if (Number.isInteger(v)) return `${v}.0`;
    const s = String(v);
    return /e/.test(s) && !/\./.test(s) ? s.replace('e', '.0e') : s;
  }
}

/** A YAML scalar as LLaMA-Factory's configs write it. */
function yamlValue(v: string | number | boolean | YamlFloat): string {
  if (v instanceof YamlFloat) return v.toString();
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`yamlValue: ${v} is not an integer (write floats as YamlFloat)`);
    return String(v);
  }
  if (typeof v === 'boolean') return String(v);
  return /^[A-Za-z0-9_./,-]+$/.test(v) && !/^(true|false|null|yes|no|on|off|y|n|~)$/i.test(v) && !/^[-.\d]/.test(v) ? v : JSON.stringify(v);
}

/** Reads the flat `key: value` YAML of `job.yaml` (comments and blank lines skipped); errors name the line. */
export function parseJobYaml(text: string, file = JOB_YAML): Record<string, string | number | boolean | null> {
  const out: Record<string, string | number | boolean | null> = {};
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\s+#.*$/, '').replace(/^#.*$/, '').trimEnd();
    if (!line.trim()) return;
    const m = /^([A-Za-z_][A-Za-z0-9_]*):\s*(.*)$/.exec(line);
    if (!m) throw new RangeError(`${file}:${i + 1}: expected "key: value", got ${JSON.stringify(raw)}`);
    const [, key, v] = m;
    if (key in out) throw new RangeError(`${file}:${i + 1}: field "${key}": given twice`);
    if (v === '' || v === 'null' || v === '~') out[key] = null;
    else if (v === 'true' || v === 'false') out[key] = v === 'true';
    else if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) out[key] = Number(v);
    else if (v.startsWith('"')) {
      try {
        out[key] = JSON.parse(v) as string;
      } catch {
        throw new RangeError(`${file}:${i + 1}: field "${key}": bad quoted string ${v}`);
      }
    } else out[key] = v;
  });
  return out;
}

export interface ExportUpdateOptions {
  /** The experiment folder (`evorec experiment --out`). */
  run: string;
  /** The incremental period to update to (>= 1): the job turns the model of t-1 into the model of t. */
  period: number;
  /** Training seed of the run (default its first). */
  trainSeed?: number;
  /** The EvoRec strategy whose update is exported (default 'evorec'; ablations without the consistency term too). */
  strategy?: string;
  /** The job folder to write (must not exist). */
  job: string;
  hooks?: Partial<ExperimentHooks>;
}

const hooksOf = (h: Partial<ExperimentHooks> = {}): ExperimentHooks => ({ stage: h.stage ?? (() => {}), log: h.log ?? (() => {}), progress: h.progress ?? (() => {}) });

/** Writes the Update of one period as a job for LLaMA-Factory (see the file's header). */
export async function exportUpdateJob(opts: ExportUpdateOptions): Promise<UpdateJobManifest> {
  const hooks = hooksOf(opts.hooks);
  const job = resolve(opts.job);
  if (existsSync(job)) throw new RangeError(`${job}: already exists; use a new --job folder`);
  const run = resolve(opts.run);
  const r = await openRunAtPeriod(run, opts.period, opts.trainSeed, opts.strategy ?? 'evorec', hooks);
  const { o, split, model, strategy, t } = r;
  const dec = model.decoder;
  const adapter = dec.adapter(strategy.name);
  hooks.stage(`P${t} ${strategy.name}: Forget and Locate`);
  const plan = planEvorecUpdate(strategy.evorec, { split, t, model, adapter, sasrec: r.sasrec as SASRec, history: o.history, seed: r.trainSeed });
  const all = Array.from({ length: dec.config.numHiddenLayers }, (_, l) => l);
  const layers = plan.layers ?? all;
  const frozenLayers = all.filter((l) => !layers.includes(l));
  if (plan.layers) hooks.log(`${strategy.name}: layers ${layers.join(', ')}${plan.located?.votes.some((v) => v > 0) ? ` (votes ${plan.located.votes.join('/')})` : ''}`);

  const tok = model.prompts.tokenizer;
  const eosText = tok.decode([tok.specialIds.eos]);
  const examplesOf = (samples: readonly Sample[]) => samples.map((s) => model.prompts.example(plan.historyOf(s), s.item));
  const conversation = (e: TrainingExample) => {
    const cut = e.labels.findIndex((x) => x !== -100);
    const prompt = e.ids.slice(0, cut);
    const answer = e.ids.slice(cut);
    const promptText = tok.decode(prompt);
    const answerText = tok.decode(answer.slice(0, -1)) + eosText;
    const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
    return {
      record: { conversations: [{ from: 'human', value: promptText }, { from: 'gpt', value: answerText }] },
      ids: { prompt, answer },
      promptMatches: same(tok.encode(promptText), prompt),
      answerMatches: same(tok.encode(answerText), answer),
    };
  };
  const train = examplesOf(split.periods[t].train).map(conversation);
  if (train.length === 0) throw new RangeError(`P${t} has no training targets: nothing to update on`);
  const headline = o.samplers[0] as NegativeSampler;
  const valid = examplesOf(validationSample(split, t, { validUsers: o.validUsers, seed: o.seed, candidates: o.candidates, sampler: headline, inactive: o.validInactive }).samples).map(conversation);

  const { updateTrain } = trainingSettings(o);
  const settings = { ...DEFAULT_LLMREC_TRAIN, ...updateTrain, seed: r.trainSeed + t };
  const trainSettings: UpdateJobManifest['train'] = {
    epochs: settings.epochs, lr: settings.lr, batchSize: settings.batchSize, warmup: settings.warmup,
    schedule: settings.schedule, weightDecay: settings.weightDecay, clipNorm: settings.clipNorm, seed: settings.seed,
  };
  const cutoff = Math.max(...[...train, ...valid].map((x) => x.ids.prompt.length + x.ids.answer.length));

  hooks.stage(`write the job ${job}`);
  const tmp = tempName(job);
  rmSync(tmp, { recursive: true, force: true });
  try {
    mkdirSync(join(tmp, 'data'), { recursive: true });
    const writeData = (name: string, xs: typeof train) => {
      writeFileSync(join(tmp, 'data', `${name}.json`), JSON.stringify(xs.map((x) => x.record), null, 1) + '\n');
      writeFileSync(join(tmp, 'data', `${name}.ids.jsonl`), xs.map((x) => JSON.stringify(x.ids)).join('\n') + (xs.length ? '\n' : ''));
    };
    writeData('train', train);
    writeData('valid', valid);
    const info = (file: string) => ({
      file_name: file,
      formatting: 'sharegpt',
      columns: { messages: 'conversations' },
      tags: { role_tag: 'from', content_tag: 'value', user_tag: 'human', assistant_tag: 'gpt' },
    });
    writeFileSync(join(tmp, 'data', 'dataset_info.json'), JSON.stringify({ [TRAIN_DATASET]: info('train.json'), ...(valid.length ? { [VALID_DATASET]: info('valid.json') } : {}) }, null, 2) + '\n');
    await saveAdapter(join(tmp, 'adapters', 'located'), layerSubset(adapter, layers, 'located'), { baseModel: 'model' });
    if (frozenLayers.length) await saveAdapter(join(tmp, 'adapters', 'frozen'), layerSubset(adapter, frozenLayers, 'frozen'), { baseModel: 'model' });
    // saveAdapter writes inference_mode true; the located adapter is the one to train.
    const locCfg = join(tmp, 'adapters', 'located', 'adapter_config.json');
    writeFileSync(locCfg, JSON.stringify({ ...JSON.parse(readFileSync(locCfg, 'utf8')), inference_mode: false }, null, 2) + '\n');
    linkModelFiles(r.backboneDir, join(tmp, 'model'));
    const cfg = adapter.config;
    const y: [string, string | number | boolean | YamlFloat][] = [];
    const f = (x: number) => new YamlFloat(x);
    const section = (name: string) => y.push([`### ${name}`, '']);
    section('model');
    y.push(['model_name_or_path', 'model'], ['adapter_name_or_path', frozenLayers.length ? 'adapters/frozen,adapters/located' : 'adapters/located'], ['trust_remote_code', false]);
    section('method');
    y.push(['stage', 'sft'], ['do_train', true], ['finetuning_type', 'lora'], ['lora_rank', cfg.r], ['lora_alpha', Number.isInteger(cfg.lora_alpha) ? cfg.lora_alpha : f(cfg.lora_alpha)], ['lora_dropout', f(cfg.lora_dropout)], ['lora_target', (Array.isArray(cfg.target_modules) ? cfg.target_modules : [cfg.target_modules]).join(',')]);
    section('dataset');
    y.push(['dataset', TRAIN_DATASET], ...(valid.length ? [['eval_dataset', VALID_DATASET] as [string, string]] : []), ['dataset_dir', 'data'], ['template', 'empty'], ['cutoff_len', cutoff], ['overwrite_cache', true], ['preprocessing_num_workers', 1]);
    section('output');
    y.push(['output_dir', 'output'], ['logging_steps', 10], ['save_strategy', 'no'], ['overwrite_output_dir', true], ['report_to', 'none']);
    section('train');
    y.push(
      ['per_device_train_batch_size', settings.batchSize], ['gradient_accumulation_steps', 1], ['learning_rate', f(settings.lr)], ['num_train_epochs', f(settings.epochs)],
      ['lr_scheduler_type', settings.schedule === 'constant' ? 'constant_with_warmup' : settings.schedule], ['warmup_ratio', f(settings.warmup)], ['weight_decay', f(settings.weightDecay)],
      ['max_grad_norm', f(settings.clipNorm)], ['adam_beta1', f(0.9)], ['adam_beta2', f(0.999)], ['seed', settings.seed], ['bf16', false], ['fp16', false],
    );
    if (valid.length) {
      section('eval');
      y.push(['per_device_eval_batch_size', settings.batchSize], ['eval_strategy', 'epoch']);
    }
    const header = [
      `# EvoRec update of ${strategy.name}, P${t - 1} -> P${t} (run ${run}, training seed ${r.trainSeed}), written by evorec export-update.`,
      `# Run in this folder: llamafactory-cli train ${JOB_YAML}; the adapter comes back in output/ (evorec import-adapter --job .).`,
      `# The last adapter of adapter_name_or_path is trained (layers ${layers.join(', ')}); the others are merged into the weights.`,
      `# lora_* below describe the adapter; resuming it, LLaMA-Factory takes them from adapters/located/adapter_config.json.`,
      '',
    ];
    writeFileSync(join(tmp, JOB_YAML), header.join('\n') + y.map(([k, v]) => (k.startsWith('###') ? `\n${k}` : `${k}: ${yamlValue(v)}`)).join('\n').trimStart() + '\n');
    const manifest: UpdateJobManifest = {
      format: UPDATE_JOB_FORMAT,
      run,
      trainSeed: r.trainSeed,
      period: t,
      strategy: strategy.name,
      layers,
      frozenLayers,
      ...(plan.located ? { located: { votes: plan.located.votes } } : {}),
      ...(plan.forgotten ? { forgotten: { users: plan.forgotten.usersFiltered, items: plan.forgotten.itemsRemoved, considered: plan.forgotten.itemsConsidered } } : {}),
      train: trainSettings,
      lora: { ...cfg, layers_to_transform: cfg.layers_to_transform, base_model_name_or_path: 'model' },
      examples: { train: train.length, valid: valid.length },
      textMatchesIds: {
        train: { prompts: train.filter((x) => x.promptMatches).length, answers: train.filter((x) => x.answerMatches).length },
        valid: { prompts: valid.filter((x) => x.promptMatches).length, answers: valid.filter((x) => x.answerMatches).length },
      },
      files: filesOf(tmp),
    };
    writeFileAtomic(join(tmp, JOB_FILE), JSON.stringify(manifest, null, 2) + '\n');
    renameSync(tmp, job);
    return manifest;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Reads and checks a job's evorec-job.json. */
export function readJobManifest(job: string): UpdateJobManifest {
  const file = join(job, JOB_FILE);
  if (!existsSync(file)) throw new RangeError(`${file}: not found (not an update job; make one with evorec export-update)`);
  let m: UpdateJobManifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as UpdateJobManifest;
  } catch (e) {
    throw new RangeError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (m?.format !== UPDATE_JOB_FORMAT) throw new RangeError(`${file}: field "format": expected ${UPDATE_JOB_FORMAT}, got ${JSON.stringify(m?.format)}`);
  for (const k of ['run', 'strategy'] as const) if (typeof m[k] !== 'string') throw new RangeError(`${file}: field "${k}": expected a string`);
  for (const k of ['period', 'trainSeed'] as const) if (!Number.isInteger(m[k])) throw new RangeError(`${file}: field "${k}": expected an integer`);
  if (!Array.isArray(m.layers) || !Array.isArray(m.frozenLayers)) throw new RangeError(`${file}: field "layers": expected a list of layers`);
  return m;
}

const jobPath = (job: string, p: string, field: string, file: string) => {
  if (isAbsolute(p) || p.split(/[\\/]/).includes('..')) throw new RangeError(`${file}: field "${field}": ${JSON.stringify(p)} must be a path inside the job folder`);
  return join(job, p);
};

/**
 * evorec's own trainer on a job's files alone, standing in for `llamafactory-cli train job.yaml`: it
 * reads job.yaml (model, adapters, dataset, the hyperparameters), the training examples (their token ids,
 * `data/train.ids.jsonl`), trains the last adapter of `adapter_name_or_path` with the others in place,
 * for every epoch (LLaMA-Factory has no ranking validation to stop on), and writes the trained adapter to
 * `output_dir` as LLaMA-Factory would.
 */
export async function trainUpdateJob(jobDir: string): Promise<{ out: string; training: LLMRecTrainResult }> {
  const job = resolve(jobDir);
  const manifest = readJobManifest(job);
  const yamlFile = join(job, JOB_YAML);
  if (!existsSync(yamlFile)) throw new RangeError(`${yamlFile}: not found`);
  const y = parseJobYaml(readFileSync(yamlFile, 'utf8'), yamlFile);
  const str = (k: string) => {
    const v = y[k];
    if (typeof v !== 'string' || !v) throw new RangeError(`${yamlFile}: field "${k}": expected a string, got ${JSON.stringify(v ?? null)}`);
    return v;
  };
  const num = (k: string, dflt?: number) => {
    const v = y[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${yamlFile}: field "${k}": expected a number, got ${JSON.stringify(v ?? null)}`);
    return v;
  };
  if (y.finetuning_type !== 'lora') throw new RangeError(`${yamlFile}: field "finetuning_type": only lora is supported, got ${JSON.stringify(y.finetuning_type)}`);
  const schedule = str('lr_scheduler_type');
  if (!['cosine', 'linear', 'constant_with_warmup'].includes(schedule)) throw new RangeError(`${yamlFile}: field "lr_scheduler_type": cosine, linear or constant_with_warmup, got ${JSON.stringify(schedule)}`);
  const options: Partial<LLMRecTrainOptions> = {
    epochs: num('num_train_epochs'),
    lr: num('learning_rate'),
    batchSize: num('per_device_train_batch_size') * num('gradient_accumulation_steps', 1),
    warmup: num('warmup_ratio', 0),
    schedule: schedule === 'constant_with_warmup' ? 'constant' : (schedule as 'cosine' | 'linear'),
    weightDecay: num('weight_decay', 0),
    clipNorm: num('max_grad_norm', 1),
    seed: num('seed', 42),
    evalsPerEpoch: 1,
  };
  if (!Number.isInteger(options.epochs)) throw new RangeError(`${yamlFile}: field "num_train_epochs": evorec trains whole epochs, got ${options.epochs}`);
  const { model: decoder, tokenizer } = await loadModelFolder(jobPath(job, str('model_name_or_path'), 'model_name_or_path', yamlFile));
  if (!tokenizer) throw new RangeError(`${job}: the model folder has no tokenizer.json`);
  const adapterDirs = str('adapter_name_or_path').split(',').map((p) => jobPath(job, p.trim(), 'adapter_name_or_path', yamlFile));
  const parts = await Promise.all(adapterDirs.map((d, i) => readAdapter(d, decoder.config, `part${i}`)));
  const trained = parts[parts.length - 1];
  // One adapter of all layers, trainable in the trained part's layers: what evorec's update trains (LLaMA-Factory merges the others).
  const whole = joinLayers('job', manifest.lora, parts);
  decoder.attachAdapter(whole, { freezeBase: true });
  decoder.setActiveAdapters('job');
  whole.setTrainableLayers(trained.layers());

  const infoFile = jobPath(job, join(str('dataset_dir'), 'dataset_info.json'), 'dataset_dir', yamlFile);
  if (!existsSync(infoFile)) throw new RangeError(`${infoFile}: not found`);
  const info = JSON.parse(readFileSync(infoFile, 'utf8')) as Record<string, { file_name?: string }>;
  const entry = info[str('dataset')];
  if (!entry?.file_name) throw new RangeError(`${infoFile}: field "${str('dataset')}.file_name": missing`);
  const dataFile = jobPath(job, join(str('dataset_dir'), entry.file_name), `${str('dataset')}.file_name`, infoFile);
  const idsFile = dataFile.replace(/\.json$/, '.ids.jsonl');
  const records = JSON.parse(readFileSync(dataFile, 'utf8')) as unknown[];
  const lines = readFileSync(idsFile, 'utf8').split('\n').filter(Boolean);
  if (lines.length !== records.length) throw new RangeError(`${idsFile}: ${lines.length} examples, but ${dataFile} has ${records.length}`);
  const examples: TrainingExample[] = lines.map((l, i) => {
    const x = JSON.parse(l) as { prompt?: unknown; answer?: unknown };
    const ok = (a: unknown): a is number[] => Array.isArray(a) && a.length > 0 && a.every((v) => Number.isInteger(v) && v >= 0 && v < decoder.config.vocabSize);
    if (!ok(x.prompt) || !ok(x.answer)) throw new RangeError(`${idsFile}:${i + 1}: fields "prompt" and "answer": expected token ids of the model's vocabulary`);
    return { ids: [...x.prompt, ...x.answer], labels: [...x.prompt.map(() => -100), ...x.answer] };
  });
  const training = await trainExamples({ decoder, padId: tokenizer.specialIds.pad }, examples, options, () => null);
  whole.setTrainableLayers(null);
  whole.freeze();
  const out = jobPath(job, str('output_dir'), 'output_dir', yamlFile);
  const result = new LoraAdapter('output', trained.config, decoder.config);
  for (const [k, p] of whole.pairs) if (trained.pairs.has(k)) result.pairs.set(k, p);
  await saveAdapter(out, result, { baseModel: 'model' });
  return { out, training };
}

export interface ImportAdapterOptions {
  /** The job folder the adapter was trained from. */
  job: string;
  /** The adapter that came back (PEFT folder; default `<job>/output`). */
  adapter?: string;
  /** Also write an LLMRec folder (backbone + this adapter + llmrec.json), e.g. for `POST /v1/versions`. */
  save?: string;
  hooks?: Partial<ExperimentHooks>;
}

export interface ImportResult {
  job: string;
  adapter: string;
  run: string;
  trainSeed: number;
  period: number;
  strategy: string;
  /** The imported adapter's evaluation on the period's test sets, by view. */
  eval: Record<string, EvalResult>;
  /** The run's strategies at that period (from its results.json), for comparison. */
  strategies: { strategy: string; eval: Record<string, EvalResult> }[];
  /** The headline view (the run's first sampler). */
  headline: string;
  saved?: string;
}

/**
 * Evaluates the adapter an update job's trainer returned, on the job's period and the run's yardstick
 * (same users, candidate sets and views, EvoRec's filtered histories for active users), beside the
 * strategies of the run at that period; optionally saves it as an LLMRec folder.
 */
export async function importUpdatedAdapter(opts: ImportAdapterOptions): Promise<ImportResult> {
  const hooks = hooksOf(opts.hooks);
  const job = resolve(opts.job);
  const manifest = readJobManifest(job);
  const adapterDir = resolve(opts.adapter ?? join(job, 'output'));
  const cfgFile = join(adapterDir, 'adapter_config.json');
  if (!existsSync(cfgFile)) throw new RangeError(`${cfgFile}: not found (the trained adapter: PEFT adapter_config.json + adapter_model.safetensors)`);
  const r = await openRunAtPeriod(manifest.run, manifest.period, manifest.trainSeed, manifest.strategy, hooks);
  const { o, split, model, strategy, t } = r;
  const dec = model.decoder;
  const { config } = await readPeftAdapter(adapterDir, dec.config);
  const located = await readAdapter(join(job, 'adapters', 'located'), dec.config, 'job-located');
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const want = located.config;
  if (config.r !== want.r) throw new RangeError(`${cfgFile}: field "r": ${config.r}, but the job's adapter has rank ${want.r}`);
  if (config.lora_alpha !== want.lora_alpha) throw new RangeError(`${cfgFile}: field "lora_alpha": ${config.lora_alpha}, but the job's adapter has ${want.lora_alpha}`);
  if (!same([...[config.target_modules].flat()].sort(), [...[want.target_modules].flat()].sort())) throw new RangeError(`${cfgFile}: field "target_modules": ${JSON.stringify(config.target_modules)}, but the job's adapter targets ${JSON.stringify(want.target_modules)}`);
  if (!same(config.layers_to_transform, manifest.layers)) throw new RangeError(`${cfgFile}: field "layers_to_transform": ${JSON.stringify(config.layers_to_transform)}, but the job trains layers ${JSON.stringify(manifest.layers)}`);
  if (config.use_rslora !== want.use_rslora) throw new RangeError(`${cfgFile}: field "use_rslora": ${config.use_rslora}, but the job's adapter has ${want.use_rslora}`);
  const returned = await readAdapter(adapterDir, dec.config, 'returned');
  for (const p of returned.pairs.values()) {
    for (const [name, m] of [['lora_A', p.A], ['lora_B', p.B]] as const) {
      const bad = m.data.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new RangeError(`${join(adapterDir, 'adapter_model.safetensors')}: tensor of layer ${p.layer} ${p.module} ${name}: ${m.data[bad]} at index ${bad}`);
    }
  }
  const parts = [returned];
  if (manifest.frozenLayers.length) parts.push(await readAdapter(join(job, 'adapters', 'frozen'), dec.config, 'job-frozen'));
  const name = `${strategy.name}-imported`;
  const whole = joinLayers(name, makeLoraConfig({ ...manifest.lora, base_model_name_or_path: null }), parts);
  whole.freeze();
  dec.attachAdapter(whole, { freezeBase: true });
  dec.setActiveAdapters(name);
  const { historyOf } = evorecForget(strategy.evorec, { split, t, sasrec: r.sasrec as SASRec, history: o.history, seed: r.trainSeed });
  hooks.stage(`P${t}: evaluate the imported adapter`);
  const sasrecFor = sasrecPerPeriod(o, split, hooks.stage);
  const evaluator = strategyEvaluator({ split, samplers: o.samplers, candidates: o.candidates, evalUsers: o.evalUsers, seed: o.seed, sasrecAt: sasrecFor });
  const evalResult = await evaluator(t, model, historyOf);
  const resultsFile = join(r.seedDir, 'results.json');
  const theirs = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as ExperimentResults).updates.filter((u) => u.period === t).map((u) => ({ strategy: u.strategy, eval: u.eval })) : [];
  let saved: string | undefined;
  if (opts.save) {
    saved = resolve(opts.save);
    if (existsSync(saved)) throw new RangeError(`${saved}: already exists; use a new --save folder`);
    await saveLLMRec(saved, model, { trained_up_to_period: t, imported: { job, adapter: adapterDir, strategy: strategy.name, run: manifest.run, trainSeed: manifest.trainSeed } }, name);
  }
  return { job, adapter: adapterDir, run: manifest.run, trainSeed: manifest.trainSeed, period: t, strategy: strategy.name, eval: evalResult, strategies: theirs, headline: o.samplers[0], ...(saved ? { saved } : {}) };
}

/**
 * The in-process update that a job stands for: the run opened at the same period, the strategy's update
 * (`updateForPeriod`'s context) trained in this process, evaluated like the import. With the run's
 * `validUsers` 0 (no early stopping, as in the job) the two give the same scores (the round-trip test).
 */
export async function updateInProcess(opts: { run: string; period: number; trainSeed?: number; strategy?: string; hooks?: Partial<ExperimentHooks> }): Promise<Record<string, EvalResult>> {
  const hooks = hooksOf(opts.hooks);
  const r = await openRunAtPeriod(resolve(opts.run), opts.period, opts.trainSeed, opts.strategy ?? 'evorec', hooks);
  const { o, split, model, strategy, t } = r;
  const { lora, updateTrain, baseTrain } = trainingSettings(o);
  const valid = validationSample(split, t, { validUsers: o.validUsers, seed: o.seed, candidates: o.candidates, sampler: o.samplers[0] as NegativeSampler, inactive: o.validInactive });
  const { report } = await updateForPeriod({
    split, t, model, strategy, adapter: model.decoder.adapter(strategy.name), lora, sasrec: r.sasrec, update: updateTrain, base: baseTrain, history: o.history, seed: r.trainSeed,
    validate: (historyOf) => validationNdcg3(model, valid.samples, valid.cands, historyOf), log: hooks.log,
  });
  const evaluator = strategyEvaluator({ split, samplers: o.samplers, candidates: o.candidates, evalUsers: o.evalUsers, seed: o.seed, sasrecAt: sasrecPerPeriod(o, split, hooks.stage) });
  return evaluator(t, model, report.historyOf);
}
