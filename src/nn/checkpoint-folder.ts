/**
 * Hugging Face checkpoint folders <-> Decoder:
 *
 *   <dir>/config.json                         (Llama / Qwen2 config, see src/io/hf-config.ts)
 *   <dir>/model.safetensors                   or model-0000i-of-0000n.safetensors + model.safetensors.index.json
 *   <dir>/tokenizer.json, tokenizer_config.json   (optional; special tokens, see src/tokenizer)
 *   <dir>/generation_config.json              (optional; validated: token ids inside the vocabulary)
 *
 * Any F32 / F16 / BF16 checkpoint of a supported architecture loads (converted to float32). Missing
 * weights and shape mismatches are errors naming the file and the tensor.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  checkHfWeights,
  type CheckpointFiles,
  ConfigError,
  type F32Tensor,
  type GenerationConfig,
  HF_KEYS,
  locateCheckpoint,
  readCheckpointHeaders,
  readGenerationConfig,
  readHfConfig,
  readSafetensorsCheckpoint,
  type WritableDtype,
  writeHfConfig,
  writeSafetensorsCheckpoint,
} from '../io/index.js';
import { checkFiniteWeights } from '../io/finite-weights.js';
import { loadTokenizer, type HfTokenizer, type Tokenizer } from '../tokenizer/index.js';
import { Decoder } from './decoder.js';
import { readAdapter, saveAdapter, type LoraAdapter } from './lora.js';

export interface LoadedModel {
  model: Decoder;
  /** The folder's tokenizer.json, when present (and not skipped). */
  tokenizer: HfTokenizer | null;
  /** The folder's generation_config.json, when present (validated; not used by LLMRec's scoring). */
  generation: GenerationConfig | null;
  files: CheckpointFiles;
}

/** Load a model folder by path (config.json + safetensors, tokenizer.json when present). */
export async function loadModelFolder(dir: string, opts: { tokenizer?: boolean; seed?: number } = {}): Promise<LoadedModel> {
  const files = await locateCheckpoint(dir);
  const config = await readHfConfig(files.config);
  const weightsFile = files.weights.kind === 'single' ? files.weights.file : files.weights.index;
  // config.json against the safetensors headers before any tensor is read or allocated.
  checkHfWeights(config, await readCheckpointHeaders(files), weightsFile, { configFile: files.config });
  const { tensors } = await readSafetensorsCheckpoint(files.dir);
  checkHfWeights(config, tensors, weightsFile);
  checkFiniteWeights(tensors, weightsFile);
  if (config.tieWordEmbeddings) tensors.delete(HF_KEYS.lmHead);
  const model = new Decoder(config, { weights: tensors, seed: opts.seed });
  let tokenizer: HfTokenizer | null = null;
  if (files.tokenizer && opts.tokenizer !== false) {
    tokenizer = await loadTokenizer(files.dir);
    // A padded embedding (Qwen2: vocab_size 151936 for 151646 token ids) is fine; the reverse is not.
    if (tokenizer.vocabSize > config.vocabSize) {
      throw new ConfigError(files.config, `${config.vocabSize} embedding rows, but ${files.tokenizer} has token ids up to ${tokenizer.vocabSize - 1}`, 'vocab_size');
    }
  }
  const generation = files.generationConfig ? await readGenerationConfig(files.generationConfig, config.vocabSize) : null;
  return { model, tokenizer, generation, files };
}

/**
 * Write a model folder: config.json, model.safetensors (sharded above `maxShardBytes`), and the
 * tokenizer (tokenizer.json + tokenizer_config.json) when given. Adapters are not included (use
 * saveAdapter, or mergeAdapter first).
 */
export async function saveModelFolder(
  dir: string,
  model: Decoder,
  opts: { tokenizer?: Tokenizer | null; dtype?: WritableDtype; maxShardBytes?: number } = {},
): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const tensors = new Map<string, F32Tensor>();
  for (const [name, t] of Object.entries(model.params)) tensors.set(name, { dtype: 'F32', shape: t.shape.slice(), data: t.data });
  const dtype = opts.dtype;
  await writeSafetensorsCheckpoint(dir, tensors, { metadata: { format: 'pt' }, ...(dtype ? { dtype } : {}), ...(opts.maxShardBytes ? { maxShardBytes: opts.maxShardBytes } : {}) });
  const cfg = { ...model.config, torchDtype: dtype === 'F16' ? ('float16' as const) : dtype === 'BF16' ? ('bfloat16' as const) : ('float32' as const) };
  await writeHfConfig(dir, cfg);
  if (opts.tokenizer) await opts.tokenizer.save(dir);
}

/** Read a PEFT adapter folder and attach it to the model under `name` (frozen unless `trainable`). */
export async function loadAdapter(dir: string, model: Decoder, name = 'default', opts: { trainable?: boolean; activate?: boolean } = {}): Promise<LoraAdapter> {
  const a = await readAdapter(dir, model.config, name);
  checkFiniteWeights(new Map(a.namedParameters()), path.join(dir, 'adapter_model.safetensors'));
  if (!opts.trainable) a.freeze();
  model.attachAdapter(a);
  if (opts.activate) model.setActiveAdapters(name);
  return a;
}

/** Write one of the model's adapters as a PEFT folder. */
export async function saveModelAdapter(dir: string, model: Decoder, name = 'default', opts: { baseModel?: string | null } = {}): Promise<void> {
  await saveAdapter(dir, model.adapter(name), opts);
}

/** Is `dir` a model folder (has config.json)? */
export async function isModelFolder(dir: string): Promise<boolean> {
  try {
    return (await fs.stat(path.join(dir, 'config.json'))).isFile();
  } catch {
    return false;
  }
}
