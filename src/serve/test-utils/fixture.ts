/** Test helpers of the service: a tiny LLMRec folder, a catalogue and interaction batches, a service process. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { decoderPreset } from '../../io/hf-config.js';
import { LLMRec } from '../../models/llmrec.js';
import { saveLLMRec } from '../../models/llmrec-io.js';
import { PromptBuilder } from '../../models/prompt.js';
import { SASRec } from '../../models/sasrec.js';
import { saveSASRec } from '../../models/sasrec-io.js';
import { Decoder } from '../../nn/decoder.js';
import { trainTokenizer } from '../../tokenizer/index.js';

export const NAMES = [
  'red apple', 'green pear', 'blue plum', 'gold melon', 'pink peach', 'black grape', 'white lime', 'brown fig',
  'gray kiwi', 'tan date', 'ruby cherry', 'lemon tart', 'mint leaf', 'sea salt', 'rose water', 'oak honey',
];
export const ITEMS = NAMES.map((title, k) => ({ id: `i${k}`, title }));

/** A randomly initialised `tiny` LLMRec with a LoRA adapter, saved as a folder (`<dir>/<name>`). */
export async function tinyLLMRecFolder(
  dir: string,
  preset: 'tiny' | 'small' = 'tiny',
  opts: { name?: string; scoring?: Partial<LLMRec['scoring']>; seed?: number; titles?: readonly string[]; history?: number } = {},
): Promise<string> {
  const titles = opts.titles ?? NAMES;
  const { tokenizer } = trainTokenizer([...titles, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 300 });
  const decoder = new Decoder(decoderPreset(preset, { vocabSize: tokenizer.vocabSize }), { seed: opts.seed ?? 1 });
  decoder.addAdapter('default', { r: 4, alpha: 8, dropout: 0 }, { seed: opts.seed ?? 1, freezeBase: true });
  const model = new LLMRec(decoder, new PromptBuilder(tokenizer, titles, { history: opts.history ?? 3 }), opts.scoring);
  const out = join(dir, opts.name ?? 'llmrec');
  await saveLLMRec(out, model);
  return out;
}

/**
 * Saves a randomly initialised SASRec into `<folder>/sasrec`, the version's retriever, over `itemIds` in
 * that order (its own item order, mapped to the catalogue's by id).
 */
export async function addRetriever(folder: string, itemIds: readonly string[], seed = 1): Promise<SASRec> {
  const model = new SASRec({ numItems: itemIds.length, hidden: 16, maxLen: 6, seed });
  await saveSASRec(join(folder, 'sasrec'), model, itemIds);
  return model;
}

/** `users` users with `per` interactions each, items drifting with the user index; ids prefixed by `tag`. */
export function interactions(tag: string, users: number, per: number, shift = 0): { id: string; user: string; item: string; timestamp: number }[] {
  const out = [];
  let ts = 1_700_000_000 + shift * 1000;
  for (let j = 0; j < per; j++) {
    for (let u = 0; u < users; u++) out.push({ id: `${tag}-${u}-${j}`, user: `u${u}`, item: `i${(u * 3 + j + shift) % NAMES.length}`, timestamp: ts++ });
  }
  return out;
}

export interface ServeProcess {
  proc: ChildProcess;
  url: string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts `evorec serve` as a process on an ephemeral loopback port and waits for its address. */
export async function startServe(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ServeProcess> {
  const main = join(import.meta.dirname, '..', '..', 'cli', 'main.ts');
  const proc = spawn(process.execPath, ['--import', 'tsx', main, 'serve', '--host', '127.0.0.1', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start in 20 s: ${err}`)), 20_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}: ${err}`));
    });
  });
  return { proc, url, stderr: () => err, exited };
}
