/**
 * Evaluation of any scorer on a period's candidate sets, per user group, with the random-ranking
 * expectation and the popularity ranking (counts up to the evaluated period) beside it.
 */
import { CandidateSampler, type NegativeSampler } from '../data/candidates.js';
import type { PeriodSplit, Sample, UserGroup } from '../data/periods.js';
import { keyedRandom } from '../data/rng.js';
import { DEFAULT_KS, randomMetrics, setMetrics, type Metrics } from './metrics.js';

/** Scores candidate items for one sample; higher is better. Async so that model scorers can batch. */
export type Scorer = (sample: Sample, candidates: number[]) => Promise<ArrayLike<number>> | ArrayLike<number>;

/** Scores many samples at once (models batch their forward passes). */
export interface BatchScorer {
  batch(samples: Sample[], candidates: number[][]): Promise<ArrayLike<number>[]> | ArrayLike<number>[];
  /** Samples per call (default 64). */
  batchSize?: number;
}

export type GroupName = UserGroup | 'all';

export interface GroupResult {
  users: number;
  metrics: Metrics;
}

export interface EvalResult {
  period: number;
  role: 'test' | 'valid';
  /** The candidate view: a sampler, 'full' (the whole catalogue) or 'two-stage' (retrieve, then re-rank). */
  sampler: NegativeSampler | 'full' | 'two-stage';
  candidates: number;
  groups: Partial<Record<GroupName, GroupResult>>;
  /**
   * Per-set metrics (with `keepSets`), for intervals that resample users: the sample's row (the pairing
   * key, the same for every strategy), its group, and each metric's value per set, in one order.
   */
  sets?: PerSet;
}

export interface PerSet {
  rows: number[];
  groups: string[];
  metrics: Record<string, number[]>;
}

export interface EvalOptions {
  role?: 'test' | 'valid';
  sampler?: NegativeSampler;
  size?: number;
  seed?: number;
  ks?: readonly number[];
  /** Evaluate only these samples (for example a fixed user sample); default all of the role. */
  filter?: (s: Sample) => boolean;
  onProgress?: (done: number, total: number) => void;
  /** Keep every set's metrics in `sets` (for bootstrap intervals over users). */
  keepSets?: boolean;
  /** Replaces a sample's candidates (for example a shared cache); default draws them from the split. */
  candidates?: (s: Sample) => number[];
}

export async function evaluate(split: PeriodSplit, t: number, scorer: Scorer | BatchScorer, opts: EvalOptions = {}): Promise<EvalResult> {
  const role = opts.role ?? 'test';
  const sampler = opts.sampler ?? 'matched';
  const size = opts.size ?? 20;
  const ks = opts.ks ?? DEFAULT_KS;
  const cs = new CandidateSampler(split);
  const draw = opts.candidates ?? ((s: Sample) => cs.candidates(s, t, role, { sampler, size, seed: opts.seed }));
  const samples = split.periods[t][role].filter(opts.filter ?? (() => true));
  const acc = new GroupMeans(opts.keepSets);
  const bs = typeof scorer === 'function' ? 1 : Math.max(1, scorer.batchSize ?? 64);
  for (let start = 0; start < samples.length; start += bs) {
    const chunk = samples.slice(start, start + bs);
    const cands = chunk.map(draw);
    const scores = typeof scorer === 'function' ? [await scorer(chunk[0], cands[0])] : await scorer.batch(chunk, cands);
    chunk.forEach((s, j) => {
      if (scores[j].length !== cands[j].length) throw new RangeError(`scorer returned ${scores[j].length} scores for ${cands[j].length} candidates`);
      const pos = cands[j].indexOf(s.item);
      const m = setMetrics(scores[j], pos, ks);
      acc.add(s.group ?? 'base', m, s.row);
    });
    opts.onProgress?.(Math.min(start + bs, samples.length), samples.length);
  }
  return { period: t, role, sampler, candidates: size, ...acc.result() };
}

/** Per-group means of per-set metrics (each set counts for its group and for 'all'), in the EvalResult shape. */
/** Means of per-set metrics by group (and 'all'); with `keepSets`, every set's metrics too (`PerSet`). */
export class GroupMeans {
  private readonly sums = new Map<GroupName, { n: number; m: Metrics }>();
  private readonly sets?: PerSet;
  constructor(keepSets = false) {
    if (keepSets) this.sets = { rows: [], groups: [], metrics: {} };
  }
  /** `row` is the sample's row, the key that pairs sets between strategies (needed with keepSets). */
  add(g: GroupName, m: Metrics, row = -1): void {
    for (const key of [g, 'all'] as GroupName[]) {
      const a = this.sums.get(key) ?? { n: 0, m: {} };
      a.n++;
      for (const k in m) a.m[k] = (a.m[k] ?? 0) + m[k];
      this.sums.set(key, a);
    }
    if (this.sets) {
      this.sets.rows.push(row);
      this.sets.groups.push(g);
      for (const k in m) (this.sets.metrics[k] ??= []).push(m[k]);
    }
  }
  /** The groups, and the sets when kept. */
  result(): Pick<EvalResult, 'groups' | 'sets'> {
    return { groups: this.groups(), ...(this.sets ? { sets: this.sets } : {}) };
  }
  groups(): Partial<Record<GroupName, GroupResult>> {
    const out: Partial<Record<GroupName, GroupResult>> = {};
    for (const [g, a] of this.sums) out[g] = { users: a.n, metrics: Object.fromEntries(Object.entries(a.m).map(([k, v]) => [k, v / a.n])) };
    return out;
  }
}

/** Ranks by item popularity among the training targets up to period t. */
export function popularityScorer(split: PeriodSplit, t: number): Scorer {
  const pop = split.popularity(t);
  return (_s, cand) => cand.map((i) => pop[i]);
}

/** The expected metrics of a random ranking, in the same shape as `evaluate`. */
export function randomResult(split: PeriodSplit, t: number, opts: EvalOptions = {}): EvalResult {
  const role = opts.role ?? 'test';
  const size = opts.size ?? 20;
  const m = randomMetrics(size, opts.ks ?? DEFAULT_KS);
  const counts = new Map<GroupName, number>();
  for (const s of split.periods[t][role].filter(opts.filter ?? (() => true))) {
    counts.set(s.group ?? 'base', (counts.get(s.group ?? 'base') ?? 0) + 1);
    counts.set('all', (counts.get('all') ?? 0) + 1);
  }
  const groups: Partial<Record<GroupName, GroupResult>> = {};
  for (const [g, n] of counts) groups[g] = { users: n, metrics: { ...m } };
  return { period: t, role, sampler: opts.sampler ?? 'matched', candidates: size, groups };
}

const GROUP_ORDER: GroupName[] = ['all', 'base', 'active', 'inactive', 'new', 'short'];

/**
 * A Markdown table: one row per (model, group), the chosen metrics as columns.
 * `results` maps a model name to its result; put baselines first.
 */
export function resultsMarkdown(results: Record<string, EvalResult>, metrics: string[] = ['HR@1', 'HR@3', 'NDCG@3', 'HR@10', 'NDCG@10']): string {
  const head = ['model', 'group', 'users', ...metrics];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
  const notes: string[] = [];
  for (const [name, r] of Object.entries(results)) {
    // A share probe has no ranking metrics: it goes under the table.
    const share = r.groups.all?.metrics.share;
    if (share !== undefined) {
      notes.push(`${name}: ${(share * 100).toFixed(1)}% of ${r.groups.all!.users.toLocaleString('en-US')} sets`);
      continue;
    }
    for (const g of GROUP_ORDER) {
      const gr = r.groups[g];
      if (!gr) continue;
      lines.push(`| ${name} | ${g} | ${gr.users.toLocaleString('en-US')} | ${metrics.map((m) => (m in gr.metrics ? gr.metrics[m].toFixed(4) : '–')).join(' | ')} |`);
    }
  }
  if (notes.length) lines.push('', `Sets whose positive is the only never-trained item (${notes.join('; ')}).`);
  return lines.join('\n');
}

/**
 * A fixed, seeded sample of at most n samples (by their row), as an `evaluate` filter. The same seed
 * picks the same users for every model, so comparisons are paired.
 */
export function sampleFilter(samples: readonly Sample[], n: number, seed: number, purpose = 'eval'): (s: Sample) => boolean {
  if (n <= 0 || n >= samples.length) return () => true;
  const rand = keyedRandom(seed, 'sample', purpose);
  const keep = new Set(
    samples
      .map((s) => ({ row: s.row, k: rand() }))
      .sort((a, b) => a.k - b.k)
      .slice(0, n)
      .map((x) => x.row),
  );
  return (s) => keep.has(s.row);
}

/**
 * P0 validation sets for choosing a ranking setting (a calibration weight, a hybrid's mix): the same
 * fixed sample of at most n validation users, with its candidate sets drawn by each sampler. Several
 * views, so that a setting is chosen for all of them rather than for the headline alone.
 */
export function validationViews(
  split: PeriodSplit,
  n: number,
  size: number,
  seed: number,
  samplers: readonly NegativeSampler[] = ['matched', 'uniform'],
): { sampler: NegativeSampler; samples: Sample[]; candidates: number[][] }[] {
  const valid = split.periods[0].valid.filter(sampleFilter(split.periods[0].valid, n, seed, 'base-valid'));
  if (!valid.length) throw new RangeError('no P0 validation users to choose the ranking settings on (--valid-users must be positive)');
  const cs = new CandidateSampler(split);
  return samplers.map((sampler) => ({ sampler, samples: valid, candidates: valid.map((s) => cs.candidates(s, 0, 'valid', { sampler, size, seed })) }));
}
