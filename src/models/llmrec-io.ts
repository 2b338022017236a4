/**
 * LLMRec folders: a Hugging Face model folder (config.json, model.safetensors, tokenizer.json) holding the
 * backbone as tuned, an optional PEFT adapter in `adapter/`, and `llmrec.json` with the prompt settings
 * and training record. Any tool that reads HF/PEFT folders reads the weights; evorec also reads the prompt.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAdapter, loadModelFolder, saveModelAdapter, saveModelFolder } from '../nn/checkpoint-folder.js';
import { writeFileAtomic } from '../util/fs.js';
import { LLMRec } from './llmrec.js';
import { PromptBuilder, type PromptOptions } from './prompt.js';

export const LLMREC_FORMAT = 'evorec-llmrec/1';
export const LLMREC_FILE = 'llmrec.json';

export interface LLMRecManifest {
  format: typeof LLMREC_FORMAT;
  prompt: PromptOptions;
  /** Sub-folder of the PEFT adapter, or null when the backbone itself was tuned. */
  adapter: string | null;
  /** Ranking settings (absent in older folders: the defaults apply). */
  scoring?: LLMRec['scoring'];
  [k: string]: unknown;
}

export async function saveLLMRec(dir: string, model: LLMRec, extra: Record<string, unknown> = {}, adapterName = 'default'): Promise<void> {
  await saveModelFolder(dir, model.decoder, { tokenizer: model.prompts.tokenizer });
  const hasAdapter = model.decoder.adapters.has(adapterName);
  if (hasAdapter) await saveModelAdapter(join(dir, 'adapter'), model.decoder, adapterName, { baseModel: '.' });
  const manifest: LLMRecManifest = { format: LLMREC_FORMAT, prompt: model.prompts.options, adapter: hasAdapter ? 'adapter' : null, scoring: model.scoring, ...extra };
  writeFileAtomic(join(dir, LLMREC_FILE), JSON.stringify(manifest, null, 2) + '\n');
}

export function isLLMRecFolder(dir: string): boolean {
  return existsSync(join(dir, LLMREC_FILE));
}

/** Loads an LLMRec folder; `titles` are the catalogue's titles by item index (from the same data). */
export async function loadLLMRec(dir: string, titles: readonly string[], opts: { trainableAdapter?: boolean } = {}): Promise<{ model: LLMRec; manifest: LLMRecManifest }> {
  const file = join(dir, LLMREC_FILE);
  if (!existsSync(file)) throw new Error(`${file}: not found (not an LLMRec folder; train one with evorec train-base)`);
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as LLMRecManifest;
  if (manifest.format !== LLMREC_FORMAT) throw new Error(`${file}: field "format": expected "${LLMREC_FORMAT}", got ${JSON.stringify(manifest.format)}`);
  const { model: decoder, tokenizer } = await loadModelFolder(dir);
  if (!tokenizer) throw new Error(`${dir}: no tokenizer.json (an LLMRec folder needs its tokenizer)`);
  if (manifest.adapter) {
    await loadAdapter(join(dir, manifest.adapter), decoder, 'default', { trainable: opts.trainableAdapter ?? false, activate: true });
  }
  return { model: new LLMRec(decoder, new PromptBuilder(tokenizer, titles, manifest.prompt), manifest.scoring ?? {}), manifest };
}
