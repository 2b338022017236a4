/**
 * Hugging Face `config.json` for Llama/Qwen2-family decoders <-> a typed {@link DecoderConfig}.
 *
 * Reading validates with zod. Structural fields (vocab_size, hidden_size, intermediate_size,
 * num_hidden_layers, num_attention_heads) are required; the others default as documented on
 * {@link DecoderConfig}. Unknown fields are kept in `extra` and written back.
 */

import { promises as fs } from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import { writeJsonAtomic } from "./atomic.js";
import { parseJsonText, shownValue } from "./json.js";

export type ModelType = "llama" | "qwen2";
export type TorchDtype = "float32" | "float16" | "bfloat16";

export interface DecoderConfig {
  modelType: ModelType;
  /** Rows of the embedding / lm_head (may exceed the tokenizer's size). */
  vocabSize: number;
  /** d_model. */
  hiddenSize: number;
  /** SwiGLU inner size (gate_proj/up_proj output). */
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** Grouped-query attention: key/value heads; divides numAttentionHeads. Default numAttentionHeads. */
  numKeyValueHeads: number;
  /** Per-head size. Default hiddenSize / numAttentionHeads (config.json `head_dim` when present). */
  headDim: number;
  /** Default 2048 (llama) / 32768 (qwen2), as in transformers. */
  maxPositionEmbeddings: number;
  /** Default 1e-6. */
  rmsNormEps: number;
  /** RoPE base. Default 10000. */
  ropeTheta: number;
  /** `rope_scaling` passed through untouched (null when absent). */
  ropeScaling: Record<string, unknown> | null;
  /** lm_head shares the embedding matrix. Default false (transformers' default). */
  tieWordEmbeddings: boolean;
  /** q/k/v projections have a bias: always true for qwen2; llama's `attention_bias` (default false). */
  qkvBias: boolean;
  /** o_proj has a bias: false for qwen2; llama's `attention_bias`. */
  oBias: boolean;
  /** gate/up/down have a bias: llama's `mlp_bias` (default false); false for qwen2. */
  mlpBias: boolean;
  /** Only "silu" (SwiGLU) is supported. */
  hiddenAct: "silu";
  bosTokenId: number | null;
  /** One id, or several (Llama 3.1 lists three); null when absent. */
  eosTokenId: number | number[] | null;
  padTokenId: number | null;
  /** Storage dtype recorded in config.json. Default "float32". */
  torchDtype: TorchDtype;
  /** Init std recorded in config.json. Default 0.02. */
  initializerRange: number;
  /** Other config.json fields, preserved on write. */
  extra: Record<string, unknown>;
}

export const CONFIG_FILE = "config.json";

export const ARCHITECTURES: Record<ModelType, string> = {
  llama: "LlamaForCausalLM",
  qwen2: "Qwen2ForCausalLM",
};

/** Error in a config file; names the file and, when relevant, the field. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    message: string,
    readonly field?: string,
  ) {
    super(`${file}${field !== undefined ? `: field "${field}"` : ""}: ${message}`);
    this.name = "ConfigError";
  }
}

const posInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative().nullable().optional();

const HfConfigSchema = z.looseObject({
  model_type: z.enum(["llama", "qwen2"]),
  architectures: z.array(z.string()).optional(),
  vocab_size: posInt,
  hidden_size: posInt,
  intermediate_size: posInt,
  num_hidden_layers: posInt,
  num_attention_heads: posInt,
  num_key_value_heads: posInt.nullable().optional(),
  head_dim: posInt.nullable().optional(),
  max_position_embeddings: posInt.optional(),
  rms_norm_eps: z.number().positive().optional(),
  rope_theta: z.number().positive().optional(),
  rope_scaling: z.record(z.string(), z.unknown()).nullable().optional(),
  tie_word_embeddings: z.boolean().optional(),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().optional(),
  hidden_act: z.literal("silu").optional(),
  bos_token_id: tokenId,
  eos_token_id: z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative()).min(1)]).nullable().optional(),
  pad_token_id: tokenId,
  torch_dtype: z.enum(["float32", "float16", "bfloat16"]).optional(),
  initializer_range: z.number().positive().optional(),
});

const KNOWN_KEYS = new Set([
  ...Object.keys(HfConfigSchema.shape),
  // written by us from typed fields / derived
]);

/** A ConfigError naming the file and the field of the first zod issue. */
export function zodToConfigError(file: string, err: z.ZodError, json: unknown, hints: Record<string, string> = {}): ConfigError {
  const issue = err.issues[0];
  const field = issue.path.map(String).join(".") || undefined;
  let value: unknown = json;
  for (const k of issue.path) value = value !== null && typeof value === "object" ? (value as Record<PropertyKey, unknown>)[k as PropertyKey] : undefined;
  const hint = hints[String(issue.path[0] ?? "")];
  const msg = value === undefined ? "is required" : `${hint ?? issue.message} (got ${shownValue(value)})`;
  return new ConfigError(file, msg, field);
}

/**
 * The largest sizes a config may give, checked before anything is allocated (a config.json is input: one
 * with `num_hidden_layers: 1000000` must be refused, not run out of memory). Each is several times the
 * largest open model of its kind (Llama 3.1 405B: 126 layers, hidden 16,384, FFN 53,248, 128 heads, head
 * size 128, vocabulary 128,256; Gemma: vocabulary 256,000; Qwen2.5-1M: 1,010,000 positions), far beyond
 * what this CPU engine runs; the weights are then checked against the safetensors headers before any
 * tensor is read.
 */
export const DECODER_LIMITS = {
  vocab_size: 1 << 20,
  hidden_size: 1 << 15,
  intermediate_size: 1 << 18,
  num_hidden_layers: 1024,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  head_dim: 4096,
  max_position_embeddings: 1 << 24,
} as const;

/** Check the invariants the decoder relies on. */
export function validateDecoderConfig(c: DecoderConfig, file = "<config>"): DecoderConfig {
  const intField = (v: number, f: keyof typeof DECODER_LIMITS) => {
    if (!Number.isInteger(v) || v <= 0) throw new ConfigError(file, `must be a positive integer, got ${v}`, f);
    if (v > DECODER_LIMITS[f]) throw new ConfigError(file, `${v} is above evorec's limit of ${DECODER_LIMITS[f]}`, f);
  };
  intField(c.vocabSize, "vocab_size");
  intField(c.hiddenSize, "hidden_size");
  intField(c.intermediateSize, "intermediate_size");
  intField(c.numHiddenLayers, "num_hidden_layers");
  intField(c.numAttentionHeads, "num_attention_heads");
  intField(c.numKeyValueHeads, "num_key_value_heads");
  intField(c.headDim, "head_dim");
  intField(c.maxPositionEmbeddings, "max_position_embeddings");
  if (c.modelType !== "llama" && c.modelType !== "qwen2") throw new ConfigError(file, `unsupported model type ${String(c.modelType)}`, "model_type");
  if (c.numAttentionHeads % c.numKeyValueHeads !== 0) {
    throw new ConfigError(file, `${c.numKeyValueHeads} must divide num_attention_heads (${c.numAttentionHeads})`, "num_key_value_heads");
  }
  if (c.headDim % 2 !== 0) throw new ConfigError(file, `rotary embeddings need an even head size, got ${c.headDim}`, "head_dim");
  if (!(c.rmsNormEps > 0)) throw new ConfigError(file, `must be > 0, got ${c.rmsNormEps}`, "rms_norm_eps");
  if (!(c.ropeTheta > 0)) throw new ConfigError(file, `must be > 0, got ${c.ropeTheta}`, "rope_theta");
  if (c.hiddenAct !== "silu") throw new ConfigError(file, `only "silu" is supported, got ${String(c.hiddenAct)}`, "hidden_act");
  if (c.modelType === "qwen2" && (!c.qkvBias || c.oBias || c.mlpBias)) {
    throw new ConfigError(file, "qwen2 has q/k/v biases and no o_proj/MLP biases", "attention_bias");
  }
  if (c.modelType === "llama" && c.qkvBias !== c.oBias) {
    throw new ConfigError(file, "llama's attention_bias applies to q/k/v and o_proj alike", "attention_bias");
  }
  const ids: [string, number | null][] = [
    ["bos_token_id", c.bosTokenId],
    ["pad_token_id", c.padTokenId],
    ...(Array.isArray(c.eosTokenId) ? c.eosTokenId : [c.eosTokenId]).map((v) => ["eos_token_id", v] as [string, number | null]),
  ];
  for (const [f, v] of ids) {
    if (v !== null && (!Number.isInteger(v) || v < 0 || v >= c.vocabSize)) {
      throw new ConfigError(file, `token id ${v} outside the vocabulary (vocab_size ${c.vocabSize})`, f);
    }
  }
  return c;
}

/** Parse a config.json object (already JSON-parsed). `file` is used in error messages. */
export function parseHfConfig(json: unknown, file = CONFIG_FILE): DecoderConfig {
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new ConfigError(file, "must be a JSON object");
  const mt = (json as { model_type?: unknown }).model_type;
  if (mt !== "llama" && mt !== "qwen2") {
    throw new ConfigError(file, `unsupported model type ${shownValue(mt)} (supported: "llama", "qwen2")`, "model_type");
  }
  if ((json as { hidden_act?: unknown }).hidden_act !== undefined && (json as { hidden_act?: unknown }).hidden_act !== "silu") {
    throw new ConfigError(file, `only "silu" (SwiGLU) is supported, got ${shownValue((json as { hidden_act?: unknown }).hidden_act)}`, "hidden_act");
  }
  const r = HfConfigSchema.safeParse(json);
  if (!r.success) throw zodToConfigError(file, r.error, json);
  const j = r.data;
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(j)) if (!KNOWN_KEYS.has(k)) extra[k] = v;
  if (j.architectures && j.architectures.length > 0 && !j.architectures.includes(ARCHITECTURES[j.model_type])) {
    throw new ConfigError(file, `expected ${ARCHITECTURES[j.model_type]} for model_type "${j.model_type}", got ${shownValue(j.architectures)}`, "architectures");
  }
  const heads = j.num_attention_heads;
  const headDim = j.head_dim ?? j.hidden_size / heads;
  if (!Number.isInteger(headDim)) {
    throw new ConfigError(file, `hidden_size ${j.hidden_size} is not divisible by num_attention_heads ${heads}`, "num_attention_heads");
  }
  const qwen = j.model_type === "qwen2";
  // Qwen2's sliding-window attention (layers from max_window_layers on attend to the last
  // sliding_window tokens only) is not implemented: refused where it would change any result.
  const sw = (json as { use_sliding_window?: unknown; sliding_window?: unknown; max_window_layers?: unknown });
  if (qwen && sw.use_sliding_window === true) {
    const window = typeof sw.sliding_window === "number" ? sw.sliding_window : null;
    const from = typeof sw.max_window_layers === "number" ? sw.max_window_layers : 0;
    const context = j.max_position_embeddings ?? 32768;
    if (from < j.num_hidden_layers && (window === null || window < context)) {
      throw new ConfigError(file, `sliding-window attention is not supported (sliding_window ${shownValue(sw.sliding_window)} < max_position_embeddings ${context} on layers ${from} and up); set use_sliding_window false`, "use_sliding_window");
    }
  }
  if (qwen && j.attention_bias === false) {
    throw new ConfigError(file, "qwen2 always has q/k/v biases; attention_bias false is not supported", "attention_bias");
  }
  const cfg: DecoderConfig = {
    modelType: j.model_type,
    vocabSize: j.vocab_size,
    hiddenSize: j.hidden_size,
    intermediateSize: j.intermediate_size,
    numHiddenLayers: j.num_hidden_layers,
    numAttentionHeads: heads,
    numKeyValueHeads: j.num_key_value_heads ?? heads,
    headDim,
    maxPositionEmbeddings: j.max_position_embeddings ?? (qwen ? 32768 : 2048),
    rmsNormEps: j.rms_norm_eps ?? 1e-6,
    ropeTheta: j.rope_theta ?? 10000,
    ropeScaling: j.rope_scaling ?? null,
    tieWordEmbeddings: j.tie_word_embeddings ?? false,
    qkvBias: qwen ? true : (j.attention_bias ?? false),
    oBias: qwen ? false : (j.attention_bias ?? false),
    mlpBias: qwen ? false : (j.mlp_bias ?? false),
    hiddenAct: "silu",
    bosTokenId: j.bos_token_id ?? null,
    eosTokenId: j.eos_token_id ?? null,
    padTokenId: j.pad_token_id ?? null,
    torchDtype: j.torch_dtype ?? "float32",
    initializerRange: j.initializer_range ?? 0.02,
    extra,
  };
  return validateDecoderConfig(cfg, file);
}

/** The config.json object for `cfg` (field order as transformers writes it: sorted keys). */
export function toHfConfigJson(cfg: DecoderConfig): Record<string, unknown> {
  validateDecoderConfig(cfg);
  const out: Record<string, unknown> = {
    ...cfg.extra,
    architectures: [ARCHITECTURES[cfg.modelType]],
    model_type: cfg.modelType,
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numHiddenLayers,
    num_attention_heads: cfg.numAttentionHeads,
    num_key_value_heads: cfg.numKeyValueHeads,
    max_position_embeddings: cfg.maxPositionEmbeddings,
    rms_norm_eps: cfg.rmsNormEps,
    rope_theta: cfg.ropeTheta,
    rope_scaling: cfg.ropeScaling,
    tie_word_embeddings: cfg.tieWordEmbeddings,
    hidden_act: cfg.hiddenAct,
    bos_token_id: cfg.bosTokenId,
    eos_token_id: cfg.eosTokenId,
    pad_token_id: cfg.padTokenId,
    torch_dtype: cfg.torchDtype,
    initializer_range: cfg.initializerRange,
  };
  if (cfg.headDim !== cfg.hiddenSize / cfg.numAttentionHeads) out.head_dim = cfg.headDim;
  if (cfg.modelType === "llama") {
    out.attention_bias = cfg.qkvBias;
    out.mlp_bias = cfg.mlpBias;
  }
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(out).sort()) sorted[k] = out[k];
  return sorted;
}

/** Read config.json from a checkpoint folder or a file path. */
export async function readHfConfig(p: string): Promise<DecoderConfig> {
  let file = p;
  try {
    if ((await fs.stat(p)).isDirectory()) file = path.join(p, CONFIG_FILE);
  } catch (err) {
    throw new ConfigError(p, `cannot read: ${(err as Error).message}`);
  }
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError(file, `cannot read: ${(err as Error).message}`);
  }
  return parseHfConfig(parseJsonText(text, file, (m) => new ConfigError(file, m)), file);
}

/** Write `<dir>/config.json` atomically. */
export async function writeHfConfig(dir: string, cfg: DecoderConfig): Promise<void> {
  await writeJsonAtomic(path.join(dir, CONFIG_FILE), toHfConfigJson(cfg));
}

// ---------------------------------------------------------------------------------------------
// Presets

export type DecoderPresetName = "tiny" | "small" | "deep" | "base";

const COMMON: Omit<DecoderConfig, "vocabSize" | "hiddenSize" | "intermediateSize" | "numHiddenLayers" | "numAttentionHeads" | "numKeyValueHeads" | "headDim" | "maxPositionEmbeddings"> = {
  modelType: "qwen2",
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  ropeScaling: null,
  tieWordEmbeddings: true,
  qkvBias: true,
  oBias: false,
  mlpBias: false,
  hiddenAct: "silu",
  // ids of evorec's trained tokenizer: <|endoftext|> = 0, <|pad|> = 1, no bos
  bosTokenId: null,
  eosTokenId: 0,
  padTokenId: 1,
  torchDtype: "float32",
  initializerRange: 0.02,
  extra: {},
};

/**
 * Presets (Qwen2 architecture, tied embeddings, RoPE base 1e4, float32):
 *  - tiny:  d 64,  2 layers, 4 heads / 2 kv, ffn 176, vocab 1024, ctx 128   (~0.16M params; unit tests, seconds)
 *  - small: d 192, 4 layers, 4 heads / 2 kv, ffn 512, vocab 8000, ctx 512   (~3.2M params; default, minutes on 2 cores)
 *  - deep:  d 128, 8 layers, 4 heads / 2 kv, ffn 384, vocab 8000, ctx 512   (~2.6M params; twice small's depth at
 *           82% of its weight FLOPs per token, so that Locate has a real choice of layers)
 *  - base:  d 256, 8 layers, 8 heads / 2 kv, ffn 688, vocab 8000, ctx 1024  (~7.6M params; largest still practical on CPU)
 */
export const DECODER_PRESETS: Record<DecoderPresetName, DecoderConfig> = {
  tiny: { ...COMMON, vocabSize: 1024, hiddenSize: 64, intermediateSize: 176, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 16, maxPositionEmbeddings: 128 },
  small: { ...COMMON, vocabSize: 8000, hiddenSize: 192, intermediateSize: 512, numHiddenLayers: 4, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 48, maxPositionEmbeddings: 512 },
  deep: { ...COMMON, vocabSize: 8000, hiddenSize: 128, intermediateSize: 384, numHiddenLayers: 8, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 32, maxPositionEmbeddings: 512 },
  base: { ...COMMON, vocabSize: 8000, hiddenSize: 256, intermediateSize: 688, numHiddenLayers: 8, numAttentionHeads: 8, numKeyValueHeads: 2, headDim: 32, maxPositionEmbeddings: 1024 },
};

/**
 * A preset with overrides (e.g. the tokenizer's vocabSize and special ids). headDim is recomputed
 * from hiddenSize/numAttentionHeads unless overridden; the result is validated.
 */
export function decoderPreset(name: DecoderPresetName, overrides: Partial<DecoderConfig> = {}): DecoderConfig {
  const base = DECODER_PRESETS[name];
  if (!base) throw new ConfigError("<preset>", `unknown preset ${JSON.stringify(name)} (${Object.keys(DECODER_PRESETS).join(", ")})`);
  const merged: DecoderConfig = { ...base, ...overrides, extra: { ...base.extra, ...(overrides.extra ?? {}) } };
  if (overrides.headDim === undefined) merged.headDim = merged.hiddenSize / merged.numAttentionHeads;
  if (overrides.modelType === "llama") {
    if (overrides.qkvBias === undefined && overrides.oBias === undefined) {
      merged.qkvBias = false;
      merged.oBias = false;
    }
  }
  if (!Number.isInteger(merged.headDim)) {
    throw new ConfigError(`<preset ${name}>`, `hidden_size ${merged.hiddenSize} is not divisible by num_attention_heads ${merged.numAttentionHeads}`, "num_attention_heads");
  }
  return validateDecoderConfig(merged, `<preset ${name}>`);
}

/** Number of parameters of a decoder with this config (lm_head counted once when tied). */
export function countParameters(c: DecoderConfig): number {
  const d = c.hiddenSize;
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  const attn = d * q + 2 * d * kv + q * d + (c.qkvBias ? q + 2 * kv : 0) + (c.oBias ? d : 0);
  const mlp = 3 * d * c.intermediateSize + (c.mlpBias ? 2 * c.intermediateSize + d : 0);
  const layer = attn + mlp + 2 * d;
  return c.vocabSize * d * (c.tieWordEmbeddings ? 1 : 2) + c.numHiddenLayers * layer + d;
}
