/**
 * The model folder the service benchmarks serve (bench/serve.ts, bench/serve-worker.ts): a randomly
 * initialised `small` LLMRec (LoRA r16, H = 10) over the Beauty titles with a SASRec (d 64) in its
 * `sasrec/` folder for full-catalogue retrieval. The cost of a request does not depend on the weights.
 */
import { join } from 'node:path';
import type { PeriodSplit } from '../src/data/periods.js';
import { decoderPreset } from '../src/io/hf-config.js';
import { LLMRec } from '../src/models/llmrec.js';
import { saveLLMRec } from '../src/models/llmrec-io.js';
import { PromptBuilder } from '../src/models/prompt.js';
import { SASRec } from '../src/models/sasrec.js';
import { saveSASRec } from '../src/models/sasrec-io.js';
import { Decoder } from '../src/nn/decoder.js';
import { trainTokenizer } from '../src/tokenizer/index.js';

/** What the folder holds, for the benches' headers. */
export const BENCH_MODEL = `small preset (${decoderPreset('small').numHiddenLayers} layers, d ${decoderPreset('small').hiddenSize})`;

/** Writes the folder under `dir` and returns its path. */
export async function benchServiceModel(split: PeriodSplit, dir: string, calibration: 'none' | 'prior' = 'none'): Promise<string> {
  const ds = split.dataset;
  const { tokenizer } = trainTokenizer(ds.titles, { vocabSize: 8000 });
  const decoder = new Decoder(decoderPreset('small', { vocabSize: tokenizer.vocabSize }), { seed: 1 });
  decoder.addAdapter('default', { r: 16, alpha: 32, dropout: 0 }, { seed: 1, freezeBase: true });
  const modelDir = join(dir, 'llmrec');
  await saveLLMRec(modelDir, new LLMRec(decoder, new PromptBuilder(tokenizer, ds.titles, { history: 10 }), { calibration }));
  await saveSASRec(join(modelDir, 'sasrec'), new SASRec({ numItems: ds.numItems, seed: 1 }), ds.itemIds);
  return modelDir;
}
