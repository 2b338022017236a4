/**
 * SASRec checkpoints as a folder: config.json (model_type "sasrec" and the hyper-parameters),
 * items.json (the external item ids, by index, so scores map back to the catalogue) and
 * model.safetensors (F32 weights). Every file is written atomically.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseJsonText } from '../io/json.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../io/safetensors.js';
import { writeFileAtomic } from '../util/fs.js';
import { SASRec, type SASRecConfig } from './sasrec.js';

export async function saveSASRec(dir: string, model: SASRec, itemIds: readonly string[], extra: Record<string, unknown> = {}): Promise<void> {
  if (itemIds.length !== model.config.numItems) throw new RangeError(`${itemIds.length} item ids for a model of ${model.config.numItems} items`);
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, p] of Object.entries(model.params)) tensors[name] = { shape: [...p.shape], data: p.data };
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { metadata: { format: 'pt', model_type: 'sasrec' } });
  writeFileAtomic(join(dir, 'items.json'), JSON.stringify(itemIds) + '\n');
  writeFileAtomic(join(dir, 'config.json'), JSON.stringify({ model_type: 'sasrec', ...model.config, ...extra }, null, 2) + '\n');
}

/** Largest SASRec hyper-parameters a folder may declare (checked before anything is allocated). */
export const SASREC_LIMITS = { numItems: 16_777_216, hidden: 4096, blocks: 64, heads: 64, maxLen: 4096 } as const;
const MAX_JSON_BYTES = 512 << 20;

function readJson(file: string): unknown {
  if (!existsSync(file)) throw new RangeError(`${file}: not found`);
  const size = statSync(file).size;
  if (size > MAX_JSON_BYTES) throw new RangeError(`${file}: ${size} bytes, above the limit of ${MAX_JSON_BYTES}`);
  return parseJsonText(readFileSync(file, 'utf8'), file, (m) => new RangeError(`${file}: ${m}`));
}

/**
 * Loads a SASRec folder. The config's sizes are checked against SASREC_LIMITS, items.json against the
 * config, and the embeddings' shapes in the safetensors header against both, before the model is built:
 * what is allocated is bounded by the files' size. Errors name the file and the field.
 */
export async function loadSASRec(dir: string): Promise<{ model: SASRec; itemIds: string[]; config: Record<string, unknown> }> {
  const cfgFile = join(dir, 'config.json');
  if (!existsSync(cfgFile)) throw new RangeError(`${cfgFile}: not found (not a SASRec folder)`);
  const cfg = readJson(cfgFile) as Record<string, unknown>;
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) throw new RangeError(`${cfgFile}: must be a JSON object`);
  if (cfg.model_type !== 'sasrec') throw new RangeError(`${cfgFile}: field "model_type": expected "sasrec", got ${typeof cfg.model_type === 'string' ? 'another value' : typeof cfg.model_type}`);
  for (const [k, max] of Object.entries(SASREC_LIMITS)) {
    const v = cfg[k];
    if (!(Number.isInteger(v) && (v as number) >= 1 && (v as number) <= max)) throw new RangeError(`${cfgFile}: field "${k}": must be an integer in [1, ${max}], got ${typeof v === 'number' ? v : typeof v}`);
  }
  if (!(typeof cfg.dropout === 'number' && cfg.dropout >= 0 && cfg.dropout < 1)) throw new RangeError(`${cfgFile}: field "dropout": must be a number in [0, 1)`);
  if (!Number.isInteger(cfg.seed)) throw new RangeError(`${cfgFile}: field "seed": must be an integer`);
  const keys: Array<keyof SASRecConfig> = ['numItems', 'hidden', 'blocks', 'heads', 'maxLen', 'dropout', 'seed'];
  const config = Object.fromEntries(keys.map((k) => [k, cfg[k]])) as unknown as SASRecConfig;
  const itemsFile = join(dir, 'items.json');
  const itemIds = readJson(itemsFile);
  if (!Array.isArray(itemIds) || itemIds.length !== config.numItems || itemIds.some((x) => typeof x !== 'string')) {
    throw new RangeError(`${itemsFile}: must be an array of ${config.numItems} item ids (strings), as config.json's numItems says`);
  }
  const weights = join(dir, 'model.safetensors');
  const { entries } = await readSafetensorsHeader(weights);
  const shape = (name: string) => entries.find((e) => e.name === name)?.shape.join(' x ') ?? 'missing';
  const want = { item_emb: `${config.numItems + 1} x ${config.hidden}`, pos_emb: `${config.maxLen} x ${config.hidden}` };
  for (const [name, s] of Object.entries(want)) if (shape(name) !== s) throw new RangeError(`${weights}: tensor "${name}" is ${shape(name)}, config.json says ${s}`);
  const model = new SASRec(config);
  const { tensors } = await readSafetensors(weights);
  for (const [name, p] of Object.entries(model.params)) {
    const t = tensors.get(name);
    if (!t) throw new RangeError(`${weights}: tensor "${name}" missing`);
    if (t.data.length !== p.data.length) throw new RangeError(`${weights}: tensor "${name}" has ${t.data.length} values, expected ${p.data.length}`);
    p.data.set(t.data);
  }
  return { model, itemIds: itemIds as string[], config: cfg };
}
