/**
 * Paired bootstrap over users (2,000 resamples, 95% percentile interval): the hybrid and the LLMRec minus
 * SASRec on the same P0 test users and candidate sets as `evorec evaluate --eval-users 2000` (docs/models.md):
 *
 *   node --import tsx scripts/p0-paired.ts runs/sasrec-p0-softmax runs/p0-deep-full 0.5
 *
 * (SASRec folder, LLMRec folder, the hybrid's LLMRec weight). Beauty, 20 candidates, seed 42. With `full`
 * as a fourth argument, the full catalogue too: SASRec's exact ranking against the two-stage hybrid and
 * LLMRec (SASRec retrieves the top 50 unseen items, the model re-ranks them), NDCG@10 and HR@10 per user.
 */
import { setThreads } from '../src/core/index.js';
import { loadSplit } from '../src/data/prepare.js';
import { CandidateSampler } from '../src/data/candidates.js';
import { sampleFilter } from '../src/eval/evaluate.js';
import { setMetrics } from '../src/eval/metrics.js';
import { loadSASRec } from '../src/models/sasrec-io.js';
import { loadLLMRec } from '../src/models/llmrec-io.js';
import { fuseScores, hybridScorer } from '../src/models/hybrid.js';
import { evaluateFull, evaluateTwoStage } from '../src/eval/full-ranking.js';
import { llmrecScorer } from '../src/models/llmrec.js';
import { sasrecFullScorer } from '../src/models/sasrec-train.js';
import { keyedRandom } from '../src/data/rng.js';
setThreads(2);
const [sasDir, llmDir, lambdaArg = '0.5', fullArg] = process.argv.slice(2);
if (!sasDir || !llmDir) throw new Error('usage: p0-paired.ts <sasrec folder> <llmrec folder> [lambda]');
const lambda = Number(lambdaArg);
const { split } = await loadSplit({ data: 'beauty' } as any);
const cs = new CandidateSampler(split);
const sas = (await loadSASRec(sasDir)).model;
const { model: llm } = await loadLLMRec(llmDir, split.dataset.titles);
const filter = sampleFilter(split.periods[0].test, 2000, 42, 'test');
const test = split.periods[0].test.filter(filter);
/** Mean and 95% percentile interval of the mean of d over 2,000 user resamples. */
function paired(d: number[], key: string): string {
  const mean = d.reduce((x, y) => x + y, 0) / d.length;
  const rand = keyedRandom(7, 'paired', key);
  const boots: number[] = [];
  for (let k = 0; k < 2000; k++) { let t = 0; for (let j = 0; j < d.length; j++) t += d[Math.floor(rand() * d.length)]; boots.push(t / d.length); }
  boots.sort((x, y) => x - y);
  return `${mean.toFixed(4)} [${boots[50].toFixed(4)}, ${boots[1949].toFixed(4)}] (${d.length} users)`;
}
if (fullArg === 'full') {
  // The same evaluation functions as `evorec evaluate --views full`, with the per-user metrics kept.
  const exact = await evaluateFull(split, 0, sasrecFullScorer(sas, split), { filter, keepSets: true });
  const retriever = sasrecFullScorer(sas, split);
  const two = async (batch: ReturnType<typeof llmrecScorer>['batch']) => evaluateTwoStage(split, 0, retriever, batch, { filter, keepSets: true, depth: 50 });
  const hybrid = await two(hybridScorer(llm, sas, split, lambda).batch);
  const llmrec = await two(llmrecScorer(llm, split).batch);
  for (const [name, r] of [['hybrid (two-stage) - sasrec', hybrid], ['llmrec (two-stage) - sasrec', llmrec]] as const) {
    const at = new Map(exact.sets!.rows.map((row, i) => [row, i]));
    for (const metric of ['NDCG@10', 'HR@10']) {
      const d = r.sets!.rows.map((row, i) => r.sets!.metrics[metric][i] - exact.sets!.metrics[metric][at.get(row)!]);
      console.log(`full ${name} ${metric}: ${paired(d, 'full' + name + metric)}`);
    }
  }
  const m = (r: typeof exact) => r.groups.all!.metrics['NDCG@10'].toFixed(4);
  console.log(`full check: sasrec NDCG@10 ${m(exact)}, hybrid ${m(hybrid)}, llmrec ${m(llmrec)}`);
}
for (const sampler of ['matched', 'uniform'] as const) {
  const cands = test.map((s) => cs.candidates(s, 0, 'test', { sampler, size: 20, seed: 42 }));
  const a = sas.score(test.map((s) => split.history(s, sas.config.maxLen)), cands);
  const b = llm.score(test.map((s) => split.history(s, llm.prompts.options.history)), cands);
  const m = (sc: ArrayLike<number>, i: number) => setMetrics(sc, cands[i].indexOf(test[i].item));
  const rows = test.map((_, i) => ({ s: m(a[i], i), l: m(b[i], i), h: m(fuseScores(a[i], b[i], lambda), i) }));
  for (const [name, key] of [['hybrid - sasrec', 'h'], ['llmrec - sasrec', 'l']] as const) {
    for (const metric of ['HR@1', 'NDCG@3']) {
      const d = rows.map((r) => r[key][metric] - r.s[metric]);
      console.log(`${sampler} ${name} ${metric}: ${paired(d, sampler + name + metric)}`);
    }
  }
  const mean = (k: 's' | 'l' | 'h', metric: string) => (rows.reduce((x, r) => x + r[k][metric], 0) / rows.length).toFixed(4);
  console.log(`${sampler} check: sasrec NDCG@3 ${mean('s', 'NDCG@3')}, llmrec ${mean('l', 'NDCG@3')}, hybrid ${mean('h', 'NDCG@3')}`);
}
