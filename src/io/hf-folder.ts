/**
 * Hugging Face checkpoint folders and PEFT LoRA adapter folders:
 *  - locate the files of a model folder (config.json, model.safetensors or a sharded index,
 *    tokenizer.json optional);
 *  - weight key names of Llama/Qwen2 models (`model.layers.N.self_attn.q_proj.weight`, ...) and
 *    their expected shapes;
 *  - PEFT layout: `adapter_config.json` (LoraConfig fields) and `adapter_model.safetensors` with
 *    PEFT's key names (`base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`).
 */

import { promises as fs } from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import { writeJsonAtomic } from "./atomic.js";
import { CONFIG_FILE, ConfigError, type DecoderConfig, zodToConfigError } from "./hf-config.js";
import { parseJsonText, shownValue } from "./json.js";
import {
  type F32Tensor,
  readSafetensors,
  readSafetensorsHeader,
  readSafetensorsIndex,
  SAFETENSORS_INDEX_NAME,
  SAFETENSORS_WEIGHTS_NAME,
  type SafetensorsEntry,
  SafetensorsError,
  type TensorMap,
  writeSafetensors,
} from "./safetensors.js";

// ---------------------------------------------------------------------------------------------
// Checkpoint folder

export const TOKENIZER_JSON = "tokenizer.json";
export const TOKENIZER_CONFIG_JSON = "tokenizer_config.json";
export const GENERATION_CONFIG_JSON = "generation_config.json";

export interface CheckpointFiles {
  dir: string;
  /** Absolute path of config.json. */
  config: string;
  weights: { kind: "single"; file: string } | { kind: "sharded"; index: string; shards: string[] };
  tokenizer?: string;
  tokenizerConfig?: string;
  generationConfig?: string;
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}

/**
 * Find the files of a Hugging Face model folder. Requires config.json and either
 * model.safetensors.index.json (preferred, with every shard present) or model.safetensors.
 * PyTorch `.bin` weights are not supported (named in the error).
 */
export async function locateCheckpoint(dir: string): Promise<CheckpointFiles> {
  const abs = path.resolve(dir);
  let st;
  try {
    st = await fs.stat(abs);
  } catch {
    throw new ConfigError(abs, "checkpoint folder does not exist");
  }
  if (!st.isDirectory()) throw new ConfigError(abs, "is not a folder");
  const config = path.join(abs, CONFIG_FILE);
  if (!(await isFile(config))) throw new ConfigError(config, "missing: a checkpoint folder needs config.json");
  const index = path.join(abs, SAFETENSORS_INDEX_NAME);
  const single = path.join(abs, SAFETENSORS_WEIGHTS_NAME);
  let weights: CheckpointFiles["weights"];
  if (await isFile(index)) {
    const idx = await readSafetensorsIndex(index);
    const shards = [...new Set(Object.values(idx.weight_map))].sort();
    for (const s of shards) {
      if (!(await isFile(path.join(abs, s)))) throw new SafetensorsError(index, `shard "${s}" listed in weight_map does not exist`);
    }
    weights = { kind: "sharded", index, shards: shards.map((s) => path.join(abs, s)) };
  } else if (await isFile(single)) {
    weights = { kind: "single", file: single };
  } else {
    const entries = await fs.readdir(abs);
    const bin = entries.find((f) => f === "pytorch_model.bin" || f === "pytorch_model.bin.index.json");
    throw new SafetensorsError(
      abs,
      `no ${SAFETENSORS_WEIGHTS_NAME} or ${SAFETENSORS_INDEX_NAME}` + (bin ? ` (found ${bin}: PyTorch .bin weights are not supported, convert to safetensors)` : ""),
    );
  }
  const out: CheckpointFiles = { dir: abs, config, weights };
  const opt = async (name: string) => ((await isFile(path.join(abs, name))) ? path.join(abs, name) : undefined);
  const tok = await opt(TOKENIZER_JSON);
  if (tok) out.tokenizer = tok;
  const tokc = await opt(TOKENIZER_CONFIG_JSON);
  if (tokc) out.tokenizerConfig = tokc;
  const gen = await opt(GENERATION_CONFIG_JSON);
  if (gen) out.generationConfig = gen;
  return out;
}

/**
 * Name, dtype and shape of every tensor of a checkpoint's weights, from the safetensors headers alone:
 * nothing of the tensors' data is read, so the weights can be checked against config.json
 * ({@link checkHfWeights}) before anything the size of the model is allocated.
 */
export async function readCheckpointHeaders(files: CheckpointFiles): Promise<Map<string, SafetensorsEntry>> {
  const out = new Map<string, SafetensorsEntry>();
  const shards = files.weights.kind === "single" ? [files.weights.file] : files.weights.shards;
  for (const shard of shards) {
    for (const e of (await readSafetensorsHeader(shard)).entries) {
      if (out.has(e.name)) throw new SafetensorsError(shard, "appears in two shards", e.name);
      out.set(e.name, e);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// generation_config.json

/** The fields of generation_config.json evorec reads (the rest is kept in `raw`). */
export interface GenerationConfig {
  bosTokenId: number | null;
  /** eos_token_id as a list (transformers allows one id or a list: generation stops at any). */
  eosTokenIds: number[];
  padTokenId: number | null;
  raw: Record<string, unknown>;
}

const TokenId = z.number().int().nonnegative();
const GenerationConfigSchema = z.looseObject({
  bos_token_id: TokenId.nullable().optional(),
  eos_token_id: z.union([TokenId, z.array(TokenId)]).nullable().optional(),
  pad_token_id: TokenId.nullable().optional(),
});

/**
 * Validate a generation_config.json object. Token ids must be non-negative integers (eos_token_id
 * one id or a list) and, when `vocabSize` is given (config.json's vocab_size), inside the vocabulary.
 * Errors are ConfigErrors naming the file and field.
 */
export function parseGenerationConfig(json: unknown, file = GENERATION_CONFIG_JSON, vocabSize?: number): GenerationConfig {
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new ConfigError(file, "must be a JSON object");
  const r = GenerationConfigSchema.safeParse(json);
  if (!r.success) throw zodToConfigError(file, r.error, json);
  const j = r.data;
  const eos = j.eos_token_id === null || j.eos_token_id === undefined ? [] : Array.isArray(j.eos_token_id) ? j.eos_token_id : [j.eos_token_id];
  if (vocabSize !== undefined) {
    const check = (field: string, id: number | null | undefined) => {
      if (id !== null && id !== undefined && id >= vocabSize) throw new ConfigError(file, `token id ${id} is outside the vocabulary (config.json vocab_size ${vocabSize})`, field);
    };
    check("bos_token_id", j.bos_token_id);
    check("pad_token_id", j.pad_token_id);
    for (const id of eos) check("eos_token_id", id);
  }
  return { bosTokenId: j.bos_token_id ?? null, eosTokenIds: eos, padTokenId: j.pad_token_id ?? null, raw: j as Record<string, unknown> };
}

/** Read and validate generation_config.json (see {@link parseGenerationConfig}). */
export async function readGenerationConfig(file: string, vocabSize?: number): Promise<GenerationConfig> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError(file, `cannot read: ${(err as Error).message}`);
  }
  return parseGenerationConfig(parseJsonText(text, file, (m) => new ConfigError(file, m)), file, vocabSize);
}

// ---------------------------------------------------------------------------------------------
// HF model weight names

export type AttnModule = "q_proj" | "k_proj" | "v_proj" | "o_proj";
export type MlpModule = "gate_proj" | "up_proj" | "down_proj";
export type LinearModule = AttnModule | MlpModule;
export const LINEAR_MODULES: readonly LinearModule[] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
const ATTN = new Set<string>(["q_proj", "k_proj", "v_proj", "o_proj"]);

/** "self_attn" for q/k/v/o, "mlp" for gate/up/down. */
export function moduleGroup(m: LinearModule): "self_attn" | "mlp" {
  return ATTN.has(m) ? "self_attn" : "mlp";
}

/** Module path inside the HF model: `model.layers.N.self_attn.q_proj`. */
export function hfModulePath(layer: number, m: LinearModule): string {
  return `model.layers.${layer}.${moduleGroup(m)}.${m}`;
}

export const HF_KEYS = {
  embedTokens: "model.embed_tokens.weight",
  norm: "model.norm.weight",
  lmHead: "lm_head.weight",
  inputLayernorm: (layer: number) => `model.layers.${layer}.input_layernorm.weight`,
  postAttentionLayernorm: (layer: number) => `model.layers.${layer}.post_attention_layernorm.weight`,
  linear: (layer: number, m: LinearModule, param: "weight" | "bias" = "weight") => `${hfModulePath(layer, m)}.${param}`,
} as const;

/** [out, in] of a linear module (HF/PyTorch layout: weight is [out_features, in_features]). */
export function linearShape(c: DecoderConfig, m: LinearModule): [number, number] {
  const d = c.hiddenSize;
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  switch (m) {
    case "q_proj":
      return [q, d];
    case "k_proj":
    case "v_proj":
      return [kv, d];
    case "o_proj":
      return [d, q];
    case "gate_proj":
    case "up_proj":
      return [c.intermediateSize, d];
    case "down_proj":
      return [d, c.intermediateSize];
  }
}

export function hasBias(c: DecoderConfig, m: LinearModule): boolean {
  if (m === "o_proj") return c.oBias;
  if (ATTN.has(m)) return c.qkvBias;
  return c.mlpBias;
}

/**
 * Every weight of a Llama/Qwen2 decoder with this config, with its shape, in a canonical order.
 * `lm_head.weight` is listed only when embeddings are not tied.
 */
export function expectedHfWeights(c: DecoderConfig): { name: string; shape: number[] }[] {
  const out: { name: string; shape: number[] }[] = [{ name: HF_KEYS.embedTokens, shape: [c.vocabSize, c.hiddenSize] }];
  for (let l = 0; l < c.numHiddenLayers; l++) {
    out.push({ name: HF_KEYS.inputLayernorm(l), shape: [c.hiddenSize] });
    for (const m of LINEAR_MODULES) {
      const [o, i] = linearShape(c, m);
      out.push({ name: HF_KEYS.linear(l, m), shape: [o, i] });
      if (hasBias(c, m)) out.push({ name: HF_KEYS.linear(l, m, "bias"), shape: [o] });
    }
    out.push({ name: HF_KEYS.postAttentionLayernorm(l), shape: [c.hiddenSize] });
  }
  out.push({ name: HF_KEYS.norm, shape: [c.hiddenSize] });
  if (!c.tieWordEmbeddings) out.push({ name: HF_KEYS.lmHead, shape: [c.vocabSize, c.hiddenSize] });
  return out;
}

export type HfWeightKey =
  | { kind: "embed_tokens" | "norm" | "lm_head" }
  | { kind: "input_layernorm" | "post_attention_layernorm"; layer: number }
  | { kind: "linear"; layer: number; module: LinearModule; param: "weight" | "bias" };

const LAYER_RE = /^model\.layers\.(\d+)\.(?:(input_layernorm|post_attention_layernorm)\.weight|(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.(weight|bias))$/;

/** Parse an HF decoder weight name; null for names that are not part of a Llama/Qwen2 decoder. */
export function parseHfWeightKey(name: string): HfWeightKey | null {
  if (name === HF_KEYS.embedTokens) return { kind: "embed_tokens" };
  if (name === HF_KEYS.norm) return { kind: "norm" };
  if (name === HF_KEYS.lmHead) return { kind: "lm_head" };
  const m = LAYER_RE.exec(name);
  if (!m) return null;
  const layer = Number(m[1]);
  if (m[2]) return { kind: m[2] as "input_layernorm" | "post_attention_layernorm", layer };
  const mod = m[4] as LinearModule;
  if (moduleGroup(mod) !== m[3]) return null;
  return { kind: "linear", layer, module: mod, param: m[5] as "weight" | "bias" };
}

/**
 * Check that `tensors` holds every weight `c` needs with the right shape. Tied models may carry
 * a redundant lm_head.weight (allowed). Unknown extra tensors are reported unless `allowExtra`
 * (e.g. rotary `inv_freq` buffers of old checkpoints are always ignored).
 */
export function checkHfWeights(
  c: DecoderConfig,
  tensors: ReadonlyMap<string, { shape: readonly number[] }>,
  file = "<weights>",
  opts: { allowExtra?: boolean; configFile?: string } = {},
): void {
  // The layer count first, without listing the expected weights (a list as long as the config says).
  let layers = 0;
  for (const n of tensors.keys()) {
    const m = /^model\.layers\.(\d+)\./.exec(n);
    if (m) layers = Math.max(layers, Number(m[1]) + 1);
  }
  if (layers < c.numHiddenLayers) {
    throw new ConfigError(opts.configFile ?? CONFIG_FILE, `${c.numHiddenLayers} layers, but ${file} holds weights of ${layers}`, "num_hidden_layers");
  }
  const expected = expectedHfWeights(c);
  const names = new Set(expected.map((e) => e.name));
  for (const e of expected) {
    const t = tensors.get(e.name);
    if (!t) throw new SafetensorsError(file, "missing from the checkpoint", e.name);
    if (t.shape.length !== e.shape.length || t.shape.some((d, i) => d !== e.shape[i])) {
      throw new SafetensorsError(file, `shape [${t.shape.join(", ")}] does not match config.json (expected [${e.shape.join(", ")}])`, e.name);
    }
  }
  if (c.tieWordEmbeddings && tensors.has(HF_KEYS.lmHead)) {
    const s = tensors.get(HF_KEYS.lmHead)!.shape;
    if (s[0] !== c.vocabSize || s[1] !== c.hiddenSize) throw new SafetensorsError(file, `shape [${s.join(", ")}] does not match the embedding`, HF_KEYS.lmHead);
    names.add(HF_KEYS.lmHead);
  }
  if (!opts.allowExtra) {
    for (const n of tensors.keys()) {
      if (!names.has(n) && !n.endsWith("rotary_emb.inv_freq")) throw new SafetensorsError(file, "unexpected tensor for this config", n);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// PEFT LoRA adapters

export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";
/** Prefix of PEFT's saved keys for a causal LM wrapped in PeftModelForCausalLM. */
export const PEFT_PREFIX = "base_model.model.";

/**
 * PEFT's LoraConfig as saved in adapter_config.json (field names and meanings as in PEFT's
 * documentation). Fields evorec does not implement are validated to their neutral values.
 */
export interface PeftLoraConfig {
  peft_type: "LORA";
  task_type: "CAUSAL_LM";
  /** Rank. */
  r: number;
  /** Scaling numerator: the update is (lora_alpha / r) * B A x (lora_alpha / sqrt(r) with use_rslora). */
  lora_alpha: number;
  lora_dropout: number;
  /** Module names (suffix match: "q_proj" matches model.layers.3.self_attn.q_proj), a regex string (full match), or "all-linear". */
  target_modules: string[] | string;
  /** Only "none" is supported. */
  bias: "none";
  base_model_name_or_path: string | null;
  revision: string | null;
  /** Must be false (weights are [out, in] as in nn.Linear). */
  fan_in_fan_out: false;
  /** Only these layer indices carry adapters (null: all layers). */
  layers_to_transform: number[] | null;
  layers_pattern: string | string[] | null;
  /** Extra fully-trained modules; evorec supports none (null). */
  modules_to_save: string[] | null;
  inference_mode: boolean;
  init_lora_weights: boolean | string;
  use_rslora: boolean;
  use_dora: false;
  /** Per-module rank / alpha overrides (key: module name suffix or regex). */
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  [k: string]: unknown;
}

const LoraConfigSchema = z.looseObject({
  peft_type: z.literal("LORA"),
  task_type: z.literal("CAUSAL_LM").nullable().optional(),
  r: z.number().int().positive(),
  lora_alpha: z.number().positive(),
  lora_dropout: z.number().min(0).max(1).optional(),
  target_modules: z.union([z.array(z.string()).min(1), z.string().min(1)]),
  bias: z.literal("none").optional(),
  base_model_name_or_path: z.string().nullable().optional(),
  revision: z.string().nullable().optional(),
  fan_in_fan_out: z.literal(false).optional(),
  layers_to_transform: z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).nullable().optional(),
  layers_pattern: z.union([z.string(), z.array(z.string())]).nullable().optional(),
  modules_to_save: z.array(z.string()).length(0).nullable().optional(),
  inference_mode: z.boolean().optional(),
  init_lora_weights: z.union([z.boolean(), z.string()]).optional(),
  use_rslora: z.boolean().optional(),
  use_dora: z.literal(false).optional(),
  rank_pattern: z.record(z.string(), z.number().int().positive()).nullable().optional(),
  alpha_pattern: z.record(z.string(), z.number().positive()).nullable().optional(),
});

const LORA_DEFAULTS = {
  task_type: "CAUSAL_LM",
  lora_dropout: 0,
  bias: "none",
  base_model_name_or_path: null,
  revision: null,
  fan_in_fan_out: false,
  layers_to_transform: null,
  layers_pattern: null,
  modules_to_save: null,
  inference_mode: true,
  init_lora_weights: true,
  use_rslora: false,
  use_dora: false,
  rank_pattern: {},
  alpha_pattern: {},
} as const;

/** A LoraConfig with PEFT's defaults for everything not given. */
export function makeLoraConfig(
  c: Pick<PeftLoraConfig, "r" | "lora_alpha" | "target_modules"> & Partial<PeftLoraConfig>,
): PeftLoraConfig {
  return parseAdapterConfig({ peft_type: "LORA", ...LORA_DEFAULTS, ...c });
}

/** Validate an adapter_config.json object. Errors name the file and field. */
export function parseAdapterConfig(json: unknown, file = ADAPTER_CONFIG_FILE): PeftLoraConfig {
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new ConfigError(file, "must be a JSON object");
  const pt = (json as { peft_type?: unknown }).peft_type;
  if (pt !== "LORA") throw new ConfigError(file, `unsupported peft_type ${shownValue(pt)} (only "LORA")`, "peft_type");
  const r = LoraConfigSchema.safeParse(json);
  if (!r.success) {
    throw zodToConfigError(file, r.error, json, {
      bias: 'only bias "none" is supported',
      fan_in_fan_out: "only fan_in_fan_out false is supported",
      use_dora: "DoRA is not supported",
      modules_to_save: "modules_to_save is not supported",
      task_type: 'only task_type "CAUSAL_LM" is supported',
    });
  }
  const j = r.data;
  const ltt = j.layers_to_transform;
  return {
    ...LORA_DEFAULTS,
    ...j,
    task_type: "CAUSAL_LM",
    lora_dropout: j.lora_dropout ?? 0,
    bias: "none",
    base_model_name_or_path: j.base_model_name_or_path ?? null,
    revision: j.revision ?? null,
    fan_in_fan_out: false,
    layers_to_transform: ltt === null || ltt === undefined ? null : Array.isArray(ltt) ? ltt : [ltt],
    layers_pattern: j.layers_pattern ?? null,
    modules_to_save: j.modules_to_save && j.modules_to_save.length ? j.modules_to_save : null,
    use_dora: false,
    rank_pattern: j.rank_pattern ?? {},
    alpha_pattern: j.alpha_pattern ?? {},
  } as PeftLoraConfig;
}

function adapterConfigPath(p: string, isDir: boolean): string {
  return isDir ? path.join(p, ADAPTER_CONFIG_FILE) : p;
}

/** Read adapter_config.json from an adapter folder or a file path. */
export async function readAdapterConfig(p: string): Promise<PeftLoraConfig> {
  let isDir = false;
  try {
    isDir = (await fs.stat(p)).isDirectory();
  } catch (err) {
    throw new ConfigError(p, `cannot read: ${(err as Error).message}`);
  }
  const file = adapterConfigPath(p, isDir);
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError(file, `cannot read: ${(err as Error).message}`);
  }
  return parseAdapterConfig(parseJsonText(text, file, (m) => new ConfigError(file, m)), file);
}

/** Write `<dir>/adapter_config.json` atomically (keys sorted, as PEFT writes them). */
export async function writeAdapterConfig(dir: string, cfg: PeftLoraConfig): Promise<void> {
  const v = parseAdapterConfig(cfg, path.join(dir, ADAPTER_CONFIG_FILE));
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
  await writeJsonAtomic(path.join(dir, ADAPTER_CONFIG_FILE), sorted);
}

/** PEFT key of a LoRA matrix: `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`. */
export function peftLoraKey(layer: number, m: LinearModule, which: "A" | "B"): string {
  return `${PEFT_PREFIX}${hfModulePath(layer, m)}.lora_${which}.weight`;
}

const PEFT_RE = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.lora_(A|B)(?:\.[A-Za-z0-9_]+)?\.weight$/;

/**
 * Parse a PEFT LoRA key (also accepts keys that still carry the adapter name, e.g.
 * `...q_proj.lora_A.default.weight`, as in in-memory PEFT state dicts). Null when not a LoRA key.
 */
export function parsePeftLoraKey(key: string): { layer: number; module: LinearModule; which: "A" | "B" } | null {
  const m = PEFT_RE.exec(key);
  if (!m) return null;
  const mod = m[3] as LinearModule;
  if (moduleGroup(mod) !== m[2]) return null;
  return { layer: Number(m[1]), module: mod, which: m[4] as "A" | "B" };
}

function matchesPattern(key: string, name: string): boolean {
  // PEFT: a pattern key matches a module whose full name ends with it (after a dot) or matches it as a regex.
  if (name === key || name.endsWith("." + key)) return true;
  try {
    return new RegExp(`^(?:.*\\.)?(?:${key})$`).test(name);
  } catch {
    return false;
  }
}

/** Is the module `hfModulePath(layer, m)` targeted by this adapter config? */
export function isLoraTarget(cfg: PeftLoraConfig, layer: number, m: LinearModule): boolean {
  if (cfg.layers_to_transform && !cfg.layers_to_transform.includes(layer)) return false;
  const name = hfModulePath(layer, m);
  const t = cfg.target_modules;
  if (typeof t === "string") {
    if (t === "all-linear") return true; // every linear layer except lm_head
    try {
      return new RegExp(`^(?:${t})$`).test(name);
    } catch {
      throw new ConfigError(ADAPTER_CONFIG_FILE, `not a valid regular expression: ${t}`, "target_modules");
    }
  }
  return t.some((x) => name === x || name.endsWith("." + x));
}

/** Rank and scaling (alpha / r, or alpha / sqrt(r) with use_rslora) of one targeted module. */
export function loraRankAndScale(cfg: PeftLoraConfig, layer: number, m: LinearModule): { r: number; alpha: number; scale: number } {
  const name = hfModulePath(layer, m);
  let r = cfg.r;
  let alpha = cfg.lora_alpha;
  for (const [k, v] of Object.entries(cfg.rank_pattern ?? {})) if (matchesPattern(k, name)) r = v;
  for (const [k, v] of Object.entries(cfg.alpha_pattern ?? {})) if (matchesPattern(k, name)) alpha = v;
  return { r, alpha, scale: cfg.use_rslora ? alpha / Math.sqrt(r) : alpha / r };
}

/** Every LoRA matrix of this adapter on this model: PEFT key, layer, module, A [r, in] / B [out, r]. */
export function expectedLoraWeights(
  c: DecoderConfig,
  cfg: PeftLoraConfig,
): { name: string; layer: number; module: LinearModule; which: "A" | "B"; shape: [number, number] }[] {
  const out: { name: string; layer: number; module: LinearModule; which: "A" | "B"; shape: [number, number] }[] = [];
  for (let l = 0; l < c.numHiddenLayers; l++) {
    for (const m of LINEAR_MODULES) {
      if (!isLoraTarget(cfg, l, m)) continue;
      const [o, i] = linearShape(c, m);
      const { r } = loraRankAndScale(cfg, l, m);
      out.push({ name: peftLoraKey(l, m, "A"), layer: l, module: m, which: "A", shape: [r, i] });
      out.push({ name: peftLoraKey(l, m, "B"), layer: l, module: m, which: "B", shape: [o, r] });
    }
  }
  return out;
}

/**
 * Write a PEFT adapter folder: adapter_config.json + adapter_model.safetensors (F32, metadata
 * format "pt"). Keys must be PEFT LoRA keys (see {@link peftLoraKey}); when `model` is given,
 * names and shapes are checked against the config.
 */
export async function writePeftAdapter(
  dir: string,
  cfg: PeftLoraConfig,
  tensors: TensorMap,
  model?: DecoderConfig,
): Promise<void> {
  const file = path.join(dir, ADAPTER_WEIGHTS_FILE);
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  for (const [k] of entries) if (!parsePeftLoraKey(k)) throw new SafetensorsError(file, "not a PEFT LoRA key (base_model.model.model.layers.N.<self_attn|mlp>.<module>.lora_<A|B>.weight)", k);
  if (model) checkLoraWeights(model, cfg, new Map(entries as [string, { shape: readonly number[] }][]), file);
  await fs.mkdir(dir, { recursive: true });
  await writeSafetensors(file, tensors, { metadata: { format: "pt" } });
  await writeAdapterConfig(dir, cfg);
}

/** Read a PEFT adapter folder; checks names/shapes against `model` when given. */
export async function readPeftAdapter(
  dir: string,
  model?: DecoderConfig,
): Promise<{ config: PeftLoraConfig; tensors: Map<string, F32Tensor> }> {
  const config = await readAdapterConfig(path.join(dir, ADAPTER_CONFIG_FILE));
  const file = path.join(dir, ADAPTER_WEIGHTS_FILE);
  if (!(await isFile(file))) {
    const bin = await isFile(path.join(dir, "adapter_model.bin"));
    throw new SafetensorsError(file, bin ? "missing (found adapter_model.bin: PyTorch .bin adapters are not supported)" : "missing");
  }
  const { tensors: raw } = await readSafetensors(file);
  // Normalise keys that carry an adapter name (lora_A.default.weight) to PEFT's saved form.
  const tensors = new Map<string, F32Tensor>();
  for (const [k, t] of raw) {
    const p = parsePeftLoraKey(k);
    if (!p) throw new SafetensorsError(file, "not a LoRA key this decoder supports", k);
    tensors.set(peftLoraKey(p.layer, p.module, p.which), t);
  }
  if (model) checkLoraWeights(model, config, tensors, file);
  return { config, tensors };
}

/** Check adapter tensors against the model and adapter configs (missing, unexpected, shape). */
export function checkLoraWeights(
  c: DecoderConfig,
  cfg: PeftLoraConfig,
  tensors: ReadonlyMap<string, { shape: readonly number[] }>,
  file = ADAPTER_WEIGHTS_FILE,
): void {
  const expected = expectedLoraWeights(c, cfg);
  const names = new Set(expected.map((e) => e.name));
  for (const e of expected) {
    const t = tensors.get(e.name);
    if (!t) throw new SafetensorsError(file, "missing: adapter_config.json targets this module", e.name);
    if (t.shape.length !== 2 || t.shape[0] !== e.shape[0] || t.shape[1] !== e.shape[1]) {
      throw new SafetensorsError(file, `shape [${t.shape.join(", ")}] does not match (expected [${e.shape.join(", ")}])`, e.name);
    }
  }
  for (const k of tensors.keys()) {
    if (!names.has(k)) throw new SafetensorsError(file, "not targeted by adapter_config.json (target_modules / layers_to_transform)", k);
  }
}
