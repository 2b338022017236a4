/**
 * LLMRec folders: a Hugging Face model folder (config.json, model.safetensors, tokenizer.json) holding the
 * backbone as tuned, an optional PEFT adapter in `adapter/`, and `llmrec.json` with the prompt settings
 * and training record. Any tool that reads HF/PEFT folders reads the weights; evorec also reads the prompt.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { parseJsonText } from '../io/json.js';
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

/**
 * Limits of llmrec.json's prompt settings, checked on reading (a prompt of `history` titles of
 * `titleTokens` tokens each is built for every request), and of the file's size.
 */
export const PROMPT_LIMITS = { history: 1000, titleTokens: 4096, targetTokens: 4096 } as const;
export const MAX_MANIFEST_BYTES = 16 << 20;

const inside = (root: string, p: string) => {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

/**
 * Reads and checks `<dir>/llmrec.json`: the format, the prompt settings against PROMPT_LIMITS, the
 * scoring settings, and the adapter folder, which must lie inside `dir` (symlinks resolved). Errors name
 * the file and the field and never quote the file's text.
 */
export function readLLMRecManifest(dir: string): LLMRecManifest {
  const file = join(dir, LLMREC_FILE);
  if (!existsSync(file)) throw new RangeError(`${file}: not found (not an LLMRec folder; train one with evorec train-base)`);
  const size = statSync(file).size;
  if (size > MAX_MANIFEST_BYTES) throw new RangeError(`${file}: ${size} bytes, above the limit of ${MAX_MANIFEST_BYTES} for a manifest`);
  const json = parseJsonText(readFileSync(file, 'utf8'), file, (m) => new RangeError(`${file}: ${m}`));
  const bad = (field: string, why: string): never => {
    throw new RangeError(`${file}: field "${field}": ${why}`);
  };
  const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new RangeError(`${file}: must be a JSON object, got ${kind(json)}`);
  const m = json as LLMRecManifest;
  const format: unknown = m.format;
  if (format !== LLMREC_FORMAT) bad('format', `expected "${LLMREC_FORMAT}", got ${typeof format === 'string' ? (/^[\w./-]{1,64}$/.test(format) ? JSON.stringify(format) : 'another string') : kind(format)}`);
  if (m.prompt === null || typeof m.prompt !== 'object' || Array.isArray(m.prompt)) bad('prompt', `must be an object, got ${kind(m.prompt)}`);
  for (const [k, max] of Object.entries(PROMPT_LIMITS)) {
    const v = (m.prompt as unknown as Record<string, unknown>)[k];
    if (v !== undefined && !(Number.isInteger(v) && (v as number) >= 1 && (v as number) <= max)) {
      bad(`prompt.${k}`, `must be an integer in [1, ${max}], got ${typeof v === 'number' ? v : kind(v)}`);
    }
  }
  const t = m.prompt.template as unknown;
  if (t !== undefined) {
    if (t === null || typeof t !== 'object' || Array.isArray(t)) bad('prompt.template', `must be an object, got ${kind(t)}`);
    for (const [k, v] of Object.entries(t as Record<string, unknown>)) if (typeof v !== 'string') bad(`prompt.template.${k}`, `must be a string, got ${kind(v)}`);
  }
  if (m.scoring !== undefined) {
    const s = m.scoring as unknown as Record<string, unknown>;
    if (s === null || typeof s !== 'object' || Array.isArray(s)) bad('scoring', `must be an object, got ${kind(s)}`);
    if (s.reduction !== undefined && s.reduction !== 'mean' && s.reduction !== 'sum') bad('scoring.reduction', `must be "mean" or "sum"`);
    if (s.calibration !== undefined && s.calibration !== 'none' && s.calibration !== 'prior') bad('scoring.calibration', `must be "none" or "prior"`);
    if (s.priorWeight !== undefined && !(typeof s.priorWeight === 'number' && s.priorWeight >= 0 && s.priorWeight <= 1)) {
      bad('scoring.priorWeight', `must be a number in [0, 1], got ${typeof s.priorWeight === 'number' ? s.priorWeight : kind(s.priorWeight)}`);
    }
  }
  if (m.adapter !== null && m.adapter !== undefined) {
    if (typeof m.adapter !== 'string' || m.adapter.length === 0) bad('adapter', `must be a sub-folder name or null, got ${kind(m.adapter)}`);
    const a = resolve(dir, m.adapter);
    if (!inside(resolve(dir), a)) bad('adapter', 'must be a folder inside the LLMRec folder');
    if (existsSync(a) && !inside(realpathSync(dir), realpathSync(a))) bad('adapter', 'must be a folder inside the LLMRec folder (it is a link to a folder outside)');
  }
  return m;
}

export function isLLMRecFolder(dir: string): boolean {
  return existsSync(join(dir, LLMREC_FILE));
}

/** Loads an LLMRec folder; `titles` are the catalogue's titles by item index (from the same data). */
export async function loadLLMRec(dir: string, titles: readonly string[], opts: { trainableAdapter?: boolean } = {}): Promise<{ model: LLMRec; manifest: LLMRecManifest }> {
  const manifest = readLLMRecManifest(dir);
  const { model: decoder, tokenizer } = await loadModelFolder(dir);
  if (!tokenizer) throw new RangeError(`${dir}: no tokenizer.json (an LLMRec folder needs its tokenizer)`);
  if (manifest.adapter) {
    await loadAdapter(join(dir, manifest.adapter), decoder, 'default', { trainable: opts.trainableAdapter ?? false, activate: true });
  }
  return { model: new LLMRec(decoder, new PromptBuilder(tokenizer, titles, manifest.prompt), manifest.scoring ?? {}), manifest };
}
