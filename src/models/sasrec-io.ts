/**
 * SASRec checkpoints as a folder: config.json (model_type "sasrec" and the hyper-parameters),
 * items.json (the external item ids, by index, so scores map back to the catalogue) and
 * model.safetensors (F32 weights). Every file is written atomically.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
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

export async function loadSASRec(dir: string): Promise<{ model: SASRec; itemIds: string[]; config: Record<string, unknown> }> {
  const cfgFile = join(dir, 'config.json');
  if (!existsSync(cfgFile)) throw new RangeError(`${cfgFile}: not found (not a SASRec folder)`);
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  if (cfg.model_type !== 'sasrec') throw new RangeError(`${cfgFile}: field "model_type": expected "sasrec", got ${JSON.stringify(cfg.model_type)}`);
  const itemIds = JSON.parse(readFileSync(join(dir, 'items.json'), 'utf8')) as string[];
  const keys: Array<keyof SASRecConfig> = ['numItems', 'hidden', 'blocks', 'heads', 'maxLen', 'dropout', 'seed'];
  const config = Object.fromEntries(keys.map((k) => [k, cfg[k]])) as unknown as SASRecConfig;
  const model = new SASRec(config);
  const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
  for (const [name, p] of Object.entries(model.params)) {
    const t = tensors.get(name);
    if (!t) throw new RangeError(`${join(dir, 'model.safetensors')}: tensor "${name}" missing`);
    if (t.data.length !== p.data.length) throw new RangeError(`${join(dir, 'model.safetensors')}: tensor "${name}" has ${t.data.length} values, expected ${p.data.length}`);
    p.data.set(t.data);
  }
  return { model, itemIds, config: cfg };
}
