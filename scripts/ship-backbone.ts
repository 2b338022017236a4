/**
 * Stores a pretrained backbone folder in BF16 for shipping in `data/` (half the bytes of float32; loaded
 * back as float32). How data/backbone-small was made (docs/backbone.md):
 *
 *   npx evorec pretrain --preset small --out runs/backbone-small
 *   node --import tsx scripts/ship-backbone.ts runs/backbone-small data/backbone-small
 *
 *   npx evorec pretrain --preset deep --steps 1500 --out runs/backbone-deep
 *   node --import tsx scripts/ship-backbone.ts runs/backbone-deep data/backbone-deep
 */
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelFolder, saveModelFolder } from '../src/nn/checkpoint-folder.js';

const [from, to] = process.argv.slice(2);
if (!from || !to) throw new Error('usage: ship-backbone.ts <pretrained folder> <output folder>');
const { model, tokenizer } = await loadModelFolder(from);
await saveModelFolder(to, model, { tokenizer, dtype: 'BF16' });
if (existsSync(join(from, 'pretrain-log.json'))) copyFileSync(join(from, 'pretrain-log.json'), join(to, 'pretrain-log.json'));
console.log(`${to}: ${model.numParameters().toLocaleString('en-US')} parameters in BF16`);
