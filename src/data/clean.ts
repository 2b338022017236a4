/**
 * Cleaning before the period split. The order of steps is fixed and each step's effect is counted:
 * sort by time (ties in file order) -> minimum rating -> de-duplicate (user, item), keeping the first ->
 * untitled items (drop or placeholder) -> k-core (iterated until every user and item has k interactions).
 */
import { withDefaults } from '../util/options.js';
import { keyedRandom } from './rng.js';
import type { Dataset } from './dataset.js';

export interface CleanOptions {
  /** Drop interactions rated below this (only when the data has ratings). Default: keep all. */
  minRating?: number;
  /** Keep only the first interaction of each (user, item) pair. Default true. */
  dedupe?: boolean;
  /** What to do with items that have no title: 'placeholder' gives them "Item <id>"; 'drop' removes their interactions. */
  untitled?: 'placeholder' | 'drop';
  /** k-core filter; 0 or 1 disables it. Default 0 (the embedded Amazon data is already 5-core). */
  kcore?: number;
  /** Keep a fixed random sample of this many users (after the other steps); 0 keeps everyone. */
  sampleUsers?: number;
  /** Seed of the user sample. */
  sampleSeed?: number;
}

export const DEFAULT_CLEAN: Required<Omit<CleanOptions, 'minRating'>> & { minRating: number | null } = {
  minRating: null,
  dedupe: true,
  untitled: 'placeholder',
  kcore: 0,
  sampleUsers: 0,
  sampleSeed: 42,
};

export interface Counts {
  users: number;
  items: number;
  interactions: number;
}

export interface CleanReport {
  before: Counts;
  after: Counts;
  removedByMinRating: number;
  removedDuplicates: number;
  untitledItems: number;
  removedUntitled: number;
  removedByKcore: number;
  kcoreRounds: number;
  /** Interactions of users left out of the user sample. */
  removedBySample: number;
}

export const countsOf = (d: Dataset): Counts => ({ users: d.numUsers, items: d.numItems, interactions: d.numInteractions });

export function placeholderTitle(itemId: string): string {
  return `Item ${itemId}`;
}

/**
 * `population` is the cleaned dataset before the user sample (the dataset itself when there is none):
 * the whole data whose period cut dates every sample shares (`loadSplit`).
 */
export function cleanDataset(input: Dataset, options: CleanOptions = {}): { dataset: Dataset; report: CleanReport; population: Dataset } {
  const opts = withDefaults(DEFAULT_CLEAN, options as Partial<typeof DEFAULT_CLEAN>);
  const before = countsOf(input);
  let d = input.sortChronologically();

  let removedByMinRating = 0;
  if (opts.minRating !== null && opts.minRating !== undefined && d.ratings) {
    const keep: number[] = [];
    for (let r = 0; r < d.numInteractions; r++) if (!(d.ratings[r] < opts.minRating)) keep.push(r);
    removedByMinRating = d.numInteractions - keep.length;
    if (keep.length === 0 && d.numInteractions > 0) throw new RangeError(`the minimum rating (--min-rating ${opts.minRating}) removed all ${d.numInteractions} interactions`);
    d = d.select(keep);
  }

  let removedDuplicates = 0;
  if (opts.dedupe) {
    const seen = new Set<number>();
    const keep: number[] = [];
    const ni = d.numItems;
    for (let r = 0; r < d.numInteractions; r++) {
      const key = d.users[r] * ni + d.items[r];
      if (!seen.has(key)) {
        seen.add(key);
        keep.push(r);
      }
    }
    removedDuplicates = d.numInteractions - keep.length;
    if (removedDuplicates > 0) d = d.select(keep);
  }

  const untitledItems = d.titles.filter((t) => t === '').length;
  let removedUntitled = 0;
  if (untitledItems > 0) {
    if (opts.untitled === 'drop') {
      const keep: number[] = [];
      for (let r = 0; r < d.numInteractions; r++) if (d.titles[d.items[r]] !== '') keep.push(r);
      removedUntitled = d.numInteractions - keep.length;
      if (keep.length === 0 && d.numInteractions > 0) throw new RangeError(`dropping untitled items (--untitled drop) removed all ${d.numInteractions} interactions: no item they name has a title`);
      d = d.select(keep);
    } else {
      for (let i = 0; i < d.numItems; i++) if (d.titles[i] === '') d.titles[i] = placeholderTitle(d.itemIds[i]);
    }
  }

  let removedByKcore = 0;
  let kcoreRounds = 0;
  const k = opts.kcore;
  if (k > 1) {
    for (;;) {
      const uc = new Int32Array(d.numUsers);
      const ic = new Int32Array(d.numItems);
      for (let r = 0; r < d.numInteractions; r++) {
        uc[d.users[r]]++;
        ic[d.items[r]]++;
      }
      const keep: number[] = [];
      for (let r = 0; r < d.numInteractions; r++) if (uc[d.users[r]] >= k && ic[d.items[r]] >= k) keep.push(r);
      if (keep.length === d.numInteractions) break;
      if (keep.length === 0 && kcoreRounds === 0) {
        const max = (c: Int32Array) => c.reduce((a, b) => Math.max(a, b), 0);
        throw new RangeError(
          `the k-core filter (--kcore ${k}) removed all ${d.numInteractions} interactions: the most active user has ${max(uc)} interactions, the most popular item ${max(ic)}`,
        );
      }
      if (keep.length === 0) throw new RangeError(`the k-core filter (--kcore ${k}) removed all ${d.numInteractions + removedByKcore} interactions in ${kcoreRounds + 1} rounds: lower k`);
      kcoreRounds++;
      removedByKcore += d.numInteractions - keep.length;
      d = d.select(keep);
    }
  }

  let removedBySample = 0;
  const population = d;
  if (opts.sampleUsers > 0 && opts.sampleUsers < d.numUsers) {
    // Users ranked by a keyed hash of their id: the sample does not depend on file or index order.
    const rand = (id: string) => keyedRandom(opts.sampleSeed, 'users', id)();
    const chosen = new Set(d.userIds.map((id, u) => ({ u, k: rand(id) })).sort((a, b) => a.k - b.k).slice(0, opts.sampleUsers).map((x) => x.u));
    const keep: number[] = [];
    for (let r = 0; r < d.numInteractions; r++) if (chosen.has(d.users[r])) keep.push(r);
    removedBySample = d.numInteractions - keep.length;
    d = d.select(keep);
  }

  return {
    dataset: d,
    population,
    report: { before, after: countsOf(d), removedByMinRating, removedDuplicates, untitledItems, removedUntitled, removedByKcore, kcoreRounds, removedBySample },
  };
}
