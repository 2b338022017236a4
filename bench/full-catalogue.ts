/**
 * Exact full-catalogue LLMRec scoring per user (the full-catalogue view's `--full-users`): every title
 * after the user's prompt, `small` preset, randomly initialised (the cost does not depend on the weights),
 * LoRA r16. Two paths on the same users:
 * - chunked: `LLMRec.score` on chunks of 256 items (the prompt re-run per chunk, every title's tokens fed);
 * - trie: `LLMRec.scoreAll` (the prompt once, each distinct title prefix once; nn/trie.ts), what
 *   `evorec evaluate --full-users` runs.
 * The history-free prior scores are computed once per model (timed apart) and shared by both.
 * Run alone: node --import tsx bench/full-catalogue.ts   (BENCH_FULL_USERS, default 2)
 */
import type { PeriodSplit, Sample } from '../src/data/periods.js';
import { LLMRec } from '../src/models/llmrec.js';

export interface FullCatalogueBench {
  items: number;
  /** Answer tokens over all titles, trie nodes, and nodes a forward feeds (those with children). */
  tokens: number;
  nodes: number;
  fed: number;
  /** What the chunked path feeds: every answer token but the last. */
  fedChunked: number;
  priorSeconds: number;
  chunkedSecondsPerUser: number;
  trieSecondsPerUser: number;
  /** Largest |chunked - trie| score over the users and items. */
  maxDiff: number;
}

export function benchFullCatalogue(model: LLMRec, split: PeriodSplit, samples: readonly Sample[]): FullCatalogueBench {
  const n = split.dataset.numItems;
  const H = model.prompts.options.history;
  const trie = model.answerTrie(n);
  const t0 = performance.now();
  model.scoreAll([], { items: n }); // fills the prior cache (default scoring is prior-calibrated)
  const priorSeconds = (performance.now() - t0) / 1000;
  let chunked = 0, tried = 0, maxDiff = 0;
  for (const s of samples) {
    const h = split.history(s, H);
    const t1 = performance.now();
    const old = new Float32Array(n);
    for (let start = 0; start < n; start += 256) {
      const items = Array.from({ length: Math.min(256, n - start) }, (_, j) => start + j);
      old.set(model.score([h], [items])[0], start);
    }
    const t2 = performance.now();
    const now = model.scoreAll([h], { items: n })[0];
    const t3 = performance.now();
    chunked += (t2 - t1) / 1000;
    tried += (t3 - t2) / 1000;
    for (let i = 0; i < n; i++) maxDiff = Math.max(maxDiff, Math.abs(old[i] - now[i]));
  }
  return {
    items: n,
    tokens: trie.totalTokens,
    nodes: trie.size,
    fed: trie.inner().length,
    fedChunked: trie.totalTokens - n,
    priorSeconds,
    chunkedSecondsPerUser: chunked / samples.length,
    trieSecondsPerUser: tried / samples.length,
    maxDiff,
  };
}

export function formatFullCatalogue(r: FullCatalogueBench, users: number, preset: string): string {
  const pct = (a: number, b: number) => `${((100 * (b - a)) / b).toFixed(1)}%`;
  return (
    `LLMRec exact full catalogue (${preset} preset, ${r.items.toLocaleString('en-US')} titles, ${users} users): ` +
    `trie ${r.nodes.toLocaleString('en-US')} nodes for ${r.tokens.toLocaleString('en-US')} answer tokens (${pct(r.nodes, r.tokens)} shared), ` +
    `${r.fed.toLocaleString('en-US')} fed vs ${r.fedChunked.toLocaleString('en-US')} (${pct(r.fed, r.fedChunked)} fewer); ` +
    `${r.chunkedSecondsPerUser.toFixed(1)} s/user chunked, ${r.trieSecondsPerUser.toFixed(1)} s/user trie ` +
    `(${(r.chunkedSecondsPerUser / r.trieSecondsPerUser).toFixed(2)}x; prior once ${r.priorSeconds.toFixed(1)} s; max |diff| ${r.maxDiff.toExponential(1)})`
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { loadSplit } = await import('../src/data/prepare.js');
  const { decoderPreset } = await import('../src/io/hf-config.js');
  const { PromptBuilder } = await import('../src/models/prompt.js');
  const { Decoder } = await import('../src/nn/decoder.js');
  const { trainTokenizer } = await import('../src/tokenizer/index.js');
  const users = Number(process.env.BENCH_FULL_USERS ?? 2);
  const { split } = await loadSplit({ data: 'beauty' });
  const { tokenizer } = trainTokenizer(split.dataset.titles, { vocabSize: 8000 });
  const decoder = new Decoder(decoderPreset('small', { vocabSize: tokenizer.vocabSize }), { seed: 1 });
  decoder.addAdapter('default', { r: 16, alpha: 32, dropout: 0.05 }, { freezeBase: true });
  const model = new LLMRec(decoder, new PromptBuilder(tokenizer, split.dataset.titles));
  const r = benchFullCatalogue(model, split, split.periods[0].test.slice(0, users));
  console.log(formatFullCatalogue(r, users, 'small'));
}
