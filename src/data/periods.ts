/**
 * The period protocol of the spec ("The evaluation protocol"):
 *
 * - rows are ordered by timestamp, ties by file order (the dataset must be sorted: see cleanDataset);
 * - P0 holds the first `base` share of all interactions, the rest is cut into T periods of equal size
 *   (by count, or by equal time intervals with cut: 'time');
 * - at the end of every period t, each user's latest interaction so far is the user's test target; the
 *   latest-but-one, when it falls in the same period as the test target, is the validation target; every
 *   other interaction with at least one item before it is a training target (with the history before it);
 * - test and validation targets are never training targets while they are; once a later interaction
 *   replaces them they are "released" and become training targets (for strategies that retrain);
 * - user groups at t >= 1: active (test target in Pt, at least two interactions before Pt), new (nothing
 *   before Pt), inactive (latest interaction before Pt), short (test target in Pt but only one interaction
 *   before it, so neither active nor new). At t = 0 every user is in group 'base'.
 */
import { withDefaults } from '../util/options.js';
import type { Dataset } from './dataset.js';

export interface PeriodOptions {
  /** Number of incremental periods T after the base period. Default 3. */
  periods?: number;
  /** Share of all interactions in the base period P0. Default 0.6. */
  base?: number;
  /** Cut by interaction count (default) or by equal time intervals. */
  cut?: 'count' | 'time';
  /** History window H: the last H items before a target. Default 10. */
  history?: number;
  /**
   * The cuts as dates: the first timestamp of P1..PT (`periodCutDates`, computed once on the whole
   * dataset). Given, they place every row (a row belongs to the last period whose date it reaches) and
   * `base` and `cut` only record how the dates were made; any user sample then shares the whole data's
   * periods, so a base trained on all users' P0 is valid for every sample. Default null: cut this dataset.
   */
  cutDates?: readonly number[] | null;
  /**
   * At most this many of each user's training targets per period, the latest ones; the earlier ones are
   * left out of `train` (into `capped`) but still count in `popularity`. 0 = all (default). It bounds what
   * an update trains on where a few users rate hundreds of items in one period (MovieLens), without
   * dropping a user; histories, validation and test targets are unchanged.
   */
  maxTrainPerUser?: number;
}

export const DEFAULT_PERIODS: Required<PeriodOptions> = { periods: 3, base: 0.6, cut: 'count', history: 10, cutDates: null, maxTrainPerUser: 0 };

export type UserGroup = 'base' | 'active' | 'inactive' | 'new' | 'short';
export const USER_GROUPS: UserGroup[] = ['base', 'active', 'inactive', 'new', 'short'];

export type SampleRole = 'train' | 'released' | 'valid' | 'test';
export const SAMPLE_ROLES: SampleRole[] = ['train', 'released', 'valid', 'test'];

/** A target interaction. `pos` is its index in the user's chronological rows; its history is rows[0..pos). */
export interface Sample {
  user: number;
  row: number;
  pos: number;
  item: number;
  timestamp: number;
  /** The user's group at this period (test and validation samples). */
  group?: UserGroup;
}

export interface Period {
  index: number;
  /** Rows [start, end) of the sorted dataset. */
  start: number;
  end: number;
  /** New data: training targets that fall in this period. */
  train: Sample[];
  /** Training targets of this period left out by `maxTrainPerUser` (each user's earliest beyond the cap). */
  capped: Sample[];
  /** Earlier test/validation targets that became training targets at this period. */
  released: Sample[];
  /** Validation targets inside this period. */
  valid: Sample[];
  /** One test target for every user with at least one item of history, by user index. */
  test: Sample[];
  /** Test users by group. */
  groups: Record<UserGroup, number>;
}

export class PeriodSplit {
  readonly options: Required<PeriodOptions>;
  /** Row boundaries: period t holds rows [boundaries[t], boundaries[t + 1]). */
  readonly boundaries: number[];
  /** Rows of each user, chronological. */
  readonly userRows: Int32Array[];
  readonly periods: Period[];
  private readonly periodOfRow: Uint8Array;

  constructor(readonly dataset: Dataset, options: PeriodOptions = {}) {
    const o = withDefaults(DEFAULT_PERIODS, options);
    if (!Number.isInteger(o.periods) || o.periods < 0 || o.periods > 250) throw new RangeError(`periods must be an integer in [0, 250], got ${o.periods}`);
    if (!(o.base > 0 && o.base < 1) && !(o.base === 1 && o.periods === 0)) throw new RangeError(`base must be in (0, 1), got ${o.base}`);
    if (!Number.isInteger(o.history) || o.history < 1) throw new RangeError(`history must be a positive integer, got ${o.history}`);
    if (!Number.isInteger(o.maxTrainPerUser) || o.maxTrainPerUser < 0) throw new RangeError(`maxTrainPerUser must be an integer >= 0 (0 = all), got ${o.maxTrainPerUser}`);
    const ts = dataset.timestamps;
    for (let r = 1; r < ts.length; r++) {
      if (ts[r] < ts[r - 1]) throw new Error('PeriodSplit needs a chronologically sorted dataset (use cleanDataset or sortChronologically)');
    }
    this.options = o;
    this.boundaries = o.cutDates ? boundariesAtDates(ts, o.cutDates, o.periods) : cutBoundaries(ts, o);
    this.periodOfRow = new Uint8Array(ts.length);
    for (let t = 0; t + 1 < this.boundaries.length; t++) this.periodOfRow.fill(t, this.boundaries[t], this.boundaries[t + 1]);
    this.userRows = dataset.rowsByUser();
    this.periods = [];
    for (let t = 0; t <= o.periods; t++) this.periods.push(this.buildPeriod(t));
  }

  get numPeriods(): number {
    return this.periods.length;
  }

  periodOf(row: number): number {
    return this.periodOfRow[row];
  }

  /** The last `h` items before a sample (oldest first). */
  history(s: Sample, h = this.options.history): number[] {
    const rows = this.userRows[s.user];
    const out: number[] = [];
    for (let p = Math.max(0, s.pos - h); p < s.pos; p++) out.push(this.dataset.items[rows[p]]);
    return out;
  }

  /** All training targets at the end of period t: new data of every period up to t plus released targets. */
  trainingUpTo(t: number): Sample[] {
    const out: Sample[] = [];
    for (let s = 0; s <= t; s++) out.push(...this.periods[s].train, ...this.periods[s].released);
    return out;
  }

  /** Each item's count among the training targets up to period t (the popularity of the spec). */
  popularity(t: number): Float64Array {
    const counts = new Float64Array(this.dataset.numItems);
    for (let s = 0; s <= t; s++) {
      for (const x of this.periods[s].train) counts[x.item]++;
      for (const x of this.periods[s].capped) counts[x.item]++;
      for (const x of this.periods[s].released) counts[x.item]++;
    }
    return counts;
  }

  private firstRows?: Int32Array;

  /**
   * Each item's first row in the sorted dataset (its first interaction by anyone, in any role): when the
   * item came into existence as far as the data can tell. An item "exists by the end of period t" when its
   * first row is below boundaries[t + 1].
   */
  firstSeen(): Int32Array {
    if (!this.firstRows) {
      const f = new Int32Array(this.dataset.numItems).fill(-1);
      const items = this.dataset.items;
      for (let r = 0; r < items.length; r++) if (f[items[r]] < 0) f[items[r]] = r;
      this.firstRows = f;
    }
    return this.firstRows;
  }

  /** Does item i exist by the end of period t (its first row lies before the period's end)? */
  existsBy(t: number): (i: number) => boolean {
    const first = this.firstSeen();
    const end = this.boundaries[t + 1];
    return (i) => first[i] >= 0 && first[i] < end;
  }

  /** Rows of user u up to the end of period t (a prefix of userRows[u]). */
  rowsUpTo(u: number, t: number): number {
    const rows = this.userRows[u];
    const end = this.boundaries[t + 1];
    let lo = 0;
    let hi = rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (rows[mid] < end) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Positions (in the user's rows) of the test and validation targets at the end of t; -1 when none. */
  heldOut(u: number, t: number): { test: number; valid: number } {
    const n = this.rowsUpTo(u, t);
    if (n === 0) return { test: -1, valid: -1 };
    const rows = this.userRows[u];
    const test = n - 1;
    const valid = n >= 2 && this.periodOfRow[rows[n - 2]] === this.periodOfRow[rows[n - 1]] ? n - 2 : -1;
    return { test, valid };
  }

  private sample(u: number, pos: number, group?: UserGroup): Sample {
    const row = this.userRows[u][pos];
    const s: Sample = { user: u, row, pos, item: this.dataset.items[row], timestamp: this.dataset.timestamps[row] };
    if (group !== undefined) s.group = group;
    return s;
  }

  private buildPeriod(t: number): Period {
    const start = this.boundaries[t];
    const end = this.boundaries[t + 1];
    const p: Period = {
      index: t,
      start,
      end,
      train: [],
      capped: [],
      released: [],
      valid: [],
      test: [],
      groups: { base: 0, active: 0, inactive: 0, new: 0, short: 0 },
    };
    for (let u = 0; u < this.userRows.length; u++) {
      const rows = this.userRows[u];
      const n = this.rowsUpTo(u, t);
      if (n === 0) continue;
      const { test, valid } = this.heldOut(u, t);
      const before = t === 0 ? 0 : this.rowsUpTo(u, t - 1);
      // New data: this period's rows with at least one item before them, less the held-out targets;
      // beyond maxTrainPerUser, the user's earliest of them are capped.
      const cap = this.options.maxTrainPerUser;
      const own: number[] = [];
      for (let pos = Math.max(1, before); pos < n; pos++) if (pos !== test && pos !== valid) own.push(pos);
      const keepFrom = cap > 0 ? Math.max(0, own.length - cap) : 0;
      own.forEach((pos, i) => (i < keepFrom ? p.capped : p.train).push(this.sample(u, pos)));
      if (t > 0) {
        const prev = this.heldOut(u, t - 1);
        for (const pos of [prev.valid, prev.test]) {
          if (pos >= 1 && pos !== test && pos !== valid) p.released.push(this.sample(u, pos));
        }
      }
      let group: UserGroup;
      if (t === 0) group = 'base';
      else if (rows[test] < start) group = 'inactive';
      else if (before === 0) group = 'new';
      else if (before >= 2) group = 'active';
      else group = 'short';
      if (test >= 1) {
        p.test.push(this.sample(u, test, group));
        p.groups[group]++;
      }
      if (valid >= 1 && rows[valid] >= start) p.valid.push(this.sample(u, valid, group));
    }
    // Training samples in chronological order of their targets (deterministic, and what a stream would see).
    p.train.sort((a, b) => a.row - b.row);
    p.capped.sort((a, b) => a.row - b.row);
    p.released.sort((a, b) => a.row - b.row);
    return p;
  }
}

/** First row whose timestamp is at least x (ts sorted ascending). */
function lowerBound(ts: Float64Array, x: number): number {
  let lo = 0;
  let hi = ts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ts[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The period cuts of a (whole) dataset as dates: the timestamp at which each of P1..PT starts. Rows that
 * share the cut's timestamp all go to the later period, so applying the dates (`cutDates`) to the very
 * dataset they came from moves a count cut back to the start of its timestamp (a day on Amazon data).
 * A period that starts after the last row gets +Infinity.
 */
export function periodCutDates(ts: Float64Array, options: PeriodOptions = {}): number[] {
  const o = withDefaults(DEFAULT_PERIODS, options);
  const b = cutBoundaries(ts, { ...o, cutDates: null });
  return b.slice(1, -1).map((r) => (r < ts.length ? ts[r] : Infinity));
}

/** Row boundaries of P0..PT from cut dates: P_k starts at the first row dated on or after dates[k - 1]. */
export function boundariesAtDates(ts: Float64Array, dates: readonly number[], periods: number): number[] {
  if (dates.length !== periods) throw new RangeError(`cutDates: expected ${periods} dates (one per period after P0), got ${dates.length}`);
  for (let k = 0; k < dates.length; k++) {
    if (Number.isNaN(dates[k]) || (k > 0 && dates[k] < dates[k - 1])) throw new RangeError(`cutDates: dates must be ascending numbers, got ${dates.join(', ')}`);
  }
  return [0, ...dates.map((d) => lowerBound(ts, d)), ts.length];
}

/** Row boundaries of P0..PT, by count or by time. */
export function cutBoundaries(ts: Float64Array, o: Required<PeriodOptions>): number[] {
  const n = ts.length;
  const b = [0];
  if (o.cut === 'count') {
    const b0 = Math.round(o.base * n);
    b.push(b0);
    for (let k = 1; k <= o.periods; k++) b.push(b0 + Math.round((k * (n - b0)) / o.periods));
  } else {
    const t0 = ts[0];
    const t1 = ts[n - 1];
    const tb = t0 + o.base * (t1 - t0);
    b.push(o.periods === 0 ? n : lowerBound(ts, tb));
    for (let k = 1; k < o.periods; k++) b.push(lowerBound(ts, tb + (k * (t1 - tb)) / o.periods));
    if (o.periods > 0) b.push(n);
  }
  b[b.length - 1] = n;
  return b;
}
