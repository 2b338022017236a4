/**
 * Paired bootstrap over users (2,000 resamples, 95% percentile interval): the hybrid and the LLMRec minus
 * SASRec on the same P0 test users and candidate sets as `evorec evaluate --eval-users 2000` (docs/models.md):
 *
 *   node --import tsx scripts/p0-paired.ts runs/sasrec-p0-softmax runs/p0-deep-full 0.5
 *
 * (SASRec folder, LLMRec folder, the hybrid's LLMRec weight). Beauty, 20 candidates, seed 42.
 */
import { setThreads } from '../src/core/index.js';
import { loadSplit } from '../src/data/prepare.js';
import { CandidateSampler } from '../src/data/candidates.js';
import { sampleFilter } from '../src/eval/evaluate.js';
import { setMetrics } from '../src/eval/metrics.js';
import { loadSASRec } from '../src/models/sasrec-io.js';
import { loadLLMRec } from '../src/models/llmrec-io.js';
import { fuseScores } from '../src/models/hybrid.js';
import { keyedRandom } from '../src/data/rng.js';
setThreads(2);
const [sasDir, llmDir, lambdaArg = '0.5'] = process.argv.slice(2);
if (!sasDir || !llmDir) throw new Error('usage: p0-paired.ts <sasrec folder> <llmrec folder> [lambda]');
const lambda = Number(lambdaArg);
const { split } = await loadSplit({ data: 'beauty' } as any);
const cs = new CandidateSampler(split);
const sas = (await loadSASRec(sasDir)).model;
const { model: llm } = await loadLLMRec(llmDir, split.dataset.titles);
const test = split.periods[0].test.filter(sampleFilter(split.periods[0].test, 2000, 42, 'test'));
for (const sampler of ['matched', 'uniform'] as const) {
  const cands = test.map((s) => cs.candidates(s, 0, 'test', { sampler, size: 20, seed: 42 }));
  const a = sas.score(test.map((s) => split.history(s, sas.config.maxLen)), cands);
  const b = llm.score(test.map((s) => split.history(s, llm.prompts.options.history)), cands);
  const m = (sc: ArrayLike<number>, i: number) => setMetrics(sc, cands[i].indexOf(test[i].item));
  const rows = test.map((_, i) => ({ s: m(a[i], i), l: m(b[i], i), h: m(fuseScores(a[i], b[i], lambda), i) }));
  for (const [name, key] of [['hybrid - sasrec', 'h'], ['llmrec - sasrec', 'l']] as const) {
    for (const metric of ['HR@1', 'NDCG@3']) {
      const d = rows.map((r) => r[key][metric] - r.s[metric]);
      const mean = d.reduce((x, y) => x + y, 0) / d.length;
      const rand = keyedRandom(7, 'paired', sampler + name + metric);
      const boots: number[] = [];
      for (let k = 0; k < 2000; k++) { let t = 0; for (let j = 0; j < d.length; j++) t += d[Math.floor(rand() * d.length)]; boots.push(t / d.length); }
      boots.sort((x, y) => x - y);
      console.log(`${sampler} ${name} ${metric}: ${mean.toFixed(4)} [${boots[50].toFixed(4)}, ${boots[1949].toFixed(4)}] (${d.length} users)`);
    }
  }
  const mean = (k: 's' | 'l' | 'h', metric: string) => (rows.reduce((x, r) => x + r[k][metric], 0) / rows.length).toFixed(4);
  console.log(`${sampler} check: sasrec NDCG@3 ${mean('s', 'NDCG@3')}, llmrec ${mean('l', 'NDCG@3')}, hybrid ${mean('h', 'NDCG@3')}`);
}
