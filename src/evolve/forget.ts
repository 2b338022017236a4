/**
 * EvoRec's Forget step. For every active user of period t, a SASRec trained on the data up to t scores each
 * item of the user's history before Pt against the user's current representation; the lowest-scoring
 * share is removed from that user's sequences (training, validation and test prompts).
 *
 * The current representation reads the user's training-visible sequence up to the end of Pt: every
 * interaction except the held-out test and validation targets, so the filter never sees what it will be
 * evaluated on. Items of Pt are never removed, nor is a history cut below `minHistory` items.
 */
import { keyedRandom } from '../data/rng.js';
import { withDefaults } from '../util/options.js';
import type { PeriodSplit, Sample } from '../data/periods.js';
import type { SASRec } from '../models/sasrec.js';

export interface ForgetOptions {
  /** Share of each active user's pre-period history to remove. Default 0.2. */
  ratio: number;
  /** Never leave fewer than this many history items (before and inside Pt together). Default 3. */
  minHistory: number;
  /** Users scored per SASRec batch. */
  batchSize: number;
  /**
   * Which of a user's pre-period items go (the same number each way): 'sasrec', the lowest-scored by
   * SASRec against the user's current representation (the method); 'random', drawn at random (seeded by
   * `seed`, the period and the user); 'oldest', the earliest ones (ablations: is SASRec's choice better
   * than none, or than recency alone?). The ablations need no SASRec.
   */
  select: 'sasrec' | 'random' | 'oldest';
  /** Seed of the 'random' selection. */
  seed: number;
}

export const DEFAULT_FORGET: ForgetOptions = { ratio: 0.2, minHistory: 3, batchSize: 256, select: 'sasrec', seed: 0 };

export interface ForgetResult {
  period: number;
  /** Removed row indices (of the sorted dataset), by user. */
  removed: Map<number, Set<number>>;
  usersFiltered: number;
  itemsRemoved: number;
  /** Items of pre-period history considered (removal candidates). */
  itemsConsidered: number;
}

/**
 * A user's training-visible rows up to the end of period t (held-out test and validation targets left out),
 * and those of them before Pt.
 */
export function visibleRows(split: PeriodSplit, u: number, t: number): { visible: number[]; before: number[] } {
  const rows = split.userRows[u];
  const n = split.rowsUpTo(u, t);
  const { test, valid } = split.heldOut(u, t);
  const start = split.boundaries[t];
  const visible: number[] = [];
  const before: number[] = [];
  for (let p = 0; p < n; p++) {
    if (p === test || p === valid) continue;
    visible.push(rows[p]);
    if (rows[p] < start) before.push(rows[p]);
  }
  return { visible, before };
}

/** The users whose test target at t lies in Pt with at least two interactions before Pt. */
export function activeUsers(split: PeriodSplit, t: number): number[] {
  return split.periods[t].test.filter((s) => s.group === 'active').map((s) => s.user);
}

export function forget(split: PeriodSplit, t: number, sasrec: SASRec | null, options: Partial<ForgetOptions> = {}): ForgetResult {
  const o = withDefaults(DEFAULT_FORGET, options);
  if (!(o.ratio >= 0 && o.ratio < 1)) throw new RangeError(`forget ratio must be in [0, 1), got ${o.ratio}`);
  if (o.select === 'sasrec' && !sasrec) throw new RangeError(`forget: selecting by SASRec needs a SASRec (select 'random' or 'oldest' does not)`);
  const items = split.dataset.items;
  const users = activeUsers(split, t);
  const removed = new Map<number, Set<number>>();
  let itemsRemoved = 0;
  let itemsConsidered = 0;
  for (let b = 0; b < users.length; b += o.batchSize) {
    const chunk = users.slice(b, b + o.batchSize);
    const current: number[][] = [];
    const before: number[][] = [];
    for (const u of chunk) {
      const { visible, before: old } = visibleRows(split, u, t);
      current.push(visible.map((r) => items[r]));
      before.push(old);
    }
    const reps = o.select === 'sasrec' ? sasrec!.representations(current) : [];
    chunk.forEach((u, j) => {
      const old = before[j];
      itemsConsidered += old.length;
      const inPeriod = current[j].length - old.length;
      const budget = Math.min(Math.floor(o.ratio * old.length), Math.max(0, old.length + inPeriod - o.minHistory));
      if (budget <= 0) return;
      let scores: ArrayLike<number>;
      if (o.select === 'sasrec') scores = sasrec!.scoreItems(reps[j], old.map((r) => items[r]));
      else if (o.select === 'random') {
        const rand = keyedRandom(o.seed, 'forget-random', t, u);
        scores = old.map(() => rand());
      } else scores = old.map((r) => r); // oldest: rows are chronological
      // Lowest scores first; ties broken towards the older row, so the choice is deterministic.
      const order = old.map((_, k) => k).sort((x, y) => scores[x] - scores[y] || old[x] - old[y]);
      const set = new Set(order.slice(0, budget).map((k) => old[k]));
      removed.set(u, set);
      itemsRemoved += set.size;
    });
  }
  return { period: t, removed, usersFiltered: removed.size, itemsRemoved, itemsConsidered };
}

/** The last `h` items before a sample, skipping the rows the Forget step removed for that user. */
export function filteredHistory(split: PeriodSplit, f: ForgetResult | null, s: Sample, h: number): number[] {
  const gone = f?.removed.get(s.user);
  if (!gone) return split.history(s, h);
  const rows = split.userRows[s.user];
  const out: number[] = [];
  for (let p = s.pos - 1; p >= 0 && out.length < h; p--) if (!gone.has(rows[p])) out.push(split.dataset.items[rows[p]]);
  return out.reverse();
}
