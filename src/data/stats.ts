/** Descriptive statistics of a dataset and of a period split, as JSON and as Markdown. */
import type { CleanReport } from './clean.js';
import type { Dataset } from './dataset.js';
import { SAMPLE_ROLES, USER_GROUPS, type PeriodSplit, type SampleRole, type UserGroup } from './periods.js';

export interface DatasetStats {
  users: number;
  items: number;
  interactions: number;
  density: number;
  firstDate: string;
  lastDate: string;
  interactionsPerUser: { min: number; median: number; mean: number; max: number };
  interactionsPerItem: { min: number; median: number; mean: number; max: number };
  hasRatings: boolean;
  ratingHistogram?: Record<string, number>;
  untitledItems: number;
}

export interface PeriodStats {
  period: number;
  firstDate: string;
  lastDate: string;
  interactions: number;
  usersWithInteractions: number;
  samples: Record<SampleRole, number>;
  /** Training targets left out by `maxTrainPerUser` (absent when none were). */
  capped?: number;
  groups: Record<UserGroup, number>;
}

/** YYYY-MM-DD of Unix seconds; '' when there is no date (an empty dataset's minimum is Infinity). */
export const isoDate = (unixSeconds: number): string => {
  const d = new Date(unixSeconds * 1000);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().slice(0, 10);
};

function summary(counts: Int32Array) {
  const sorted = Array.from(counts).sort((a, b) => a - b);
  const n = sorted.length;
  const mean = n === 0 ? 0 : sorted.reduce((a, b) => a + b, 0) / n;
  return {
    min: sorted[0] ?? 0,
    median: n === 0 ? 0 : n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    mean: Math.round(mean * 100) / 100,
    max: sorted[n - 1] ?? 0,
  };
}

export function datasetStats(d: Dataset): DatasetStats {
  const uc = new Int32Array(d.numUsers);
  const ic = new Int32Array(d.numItems);
  let tmin = Infinity;
  let tmax = -Infinity;
  for (let r = 0; r < d.numInteractions; r++) {
    uc[d.users[r]]++;
    ic[d.items[r]]++;
    const t = d.timestamps[r];
    if (t < tmin) tmin = t;
    if (t > tmax) tmax = t;
  }
  const out: DatasetStats = {
    users: d.numUsers,
    items: d.numItems,
    interactions: d.numInteractions,
    density: d.numInteractions / Math.max(1, d.numUsers * d.numItems),
    firstDate: isoDate(tmin),
    lastDate: isoDate(tmax),
    interactionsPerUser: summary(uc),
    interactionsPerItem: summary(ic),
    hasRatings: d.ratings !== null,
    untitledItems: d.titles.filter((t) => t === '').length,
  };
  if (d.ratings) {
    const h: Record<string, number> = {};
    for (const r of d.ratings) {
      const k = Number.isNaN(r) ? 'none' : String(r);
      h[k] = (h[k] ?? 0) + 1;
    }
    out.ratingHistogram = Object.fromEntries(Object.entries(h).sort(([a], [b]) => Number(a) - Number(b)));
  }
  return out;
}

export function periodStats(split: PeriodSplit): PeriodStats[] {
  const d = split.dataset;
  return split.periods.map((p) => {
    const users = new Set<number>();
    for (let r = p.start; r < p.end; r++) users.add(d.users[r]);
    const samples = Object.fromEntries(SAMPLE_ROLES.map((role) => [role, p[role].length])) as Record<SampleRole, number>;
    return {
      period: p.index,
      firstDate: p.end > p.start ? isoDate(d.timestamps[p.start]) : '',
      lastDate: p.end > p.start ? isoDate(d.timestamps[p.end - 1]) : '',
      interactions: p.end - p.start,
      usersWithInteractions: users.size,
      samples,
      ...(p.capped.length > 0 ? { capped: p.capped.length } : {}),
      groups: { ...p.groups },
    };
  });
}

const fmt = (n: number) => n.toLocaleString('en-US');

export function datasetStatsMarkdown(name: string, s: DatasetStats): string {
  const u = s.interactionsPerUser;
  const i = s.interactionsPerItem;
  return [
    `| ${name} | |`,
    '|---|---|',
    `| users | ${fmt(s.users)} |`,
    `| items | ${fmt(s.items)} |`,
    `| interactions | ${fmt(s.interactions)} |`,
    `| density | ${(s.density * 100).toFixed(4)}% |`,
    `| time range | ${s.firstDate} to ${s.lastDate} |`,
    `| interactions per user (min / median / mean / max) | ${u.min} / ${u.median} / ${u.mean} / ${u.max} |`,
    `| interactions per item (min / median / mean / max) | ${i.min} / ${i.median} / ${i.mean} / ${i.max} |`,
    `| ratings | ${s.hasRatings ? Object.entries(s.ratingHistogram ?? {}).map(([k, v]) => `${k}: ${fmt(v)}`).join(', ') : 'none'} |`,
    `| items without a title | ${fmt(s.untitledItems)} |`,
  ].join('\n');
}

export function periodStatsMarkdown(ps: PeriodStats[]): string {
  const groups = USER_GROUPS;
  // The capped column only where maxTrainPerUser left training targets out.
  const capped = ps.some((p) => (p.capped ?? 0) > 0);
  const head = ['period', 'dates', 'interactions', 'users', ...SAMPLE_ROLES, ...(capped ? ['capped (train)'] : []), ...groups.map((g) => `test: ${g}`)];
  const rows = ps.map((p) => [
    `P${p.period}`,
    `${p.firstDate} to ${p.lastDate}`,
    fmt(p.interactions),
    fmt(p.usersWithInteractions),
    ...SAMPLE_ROLES.map((r) => fmt(p.samples[r])),
    ...(capped ? [fmt(p.capped ?? 0)] : []),
    ...groups.map((g) => fmt(p.groups[g])),
  ]);
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function cleanReportMarkdown(r: CleanReport): string {
  return [
    '| cleaning | users | items | interactions |',
    '|---|---|---|---|',
    `| before | ${fmt(r.before.users)} | ${fmt(r.before.items)} | ${fmt(r.before.interactions)} |`,
    `| after | ${fmt(r.after.users)} | ${fmt(r.after.items)} | ${fmt(r.after.interactions)} |`,
    '',
    `Removed: ${fmt(r.removedByMinRating)} below the minimum rating, ${fmt(r.removedDuplicates)} repeated (user, item) pairs, ` +
      `${fmt(r.removedUntitled)} of untitled items, ${fmt(r.removedByKcore)} by the k-core filter (${r.kcoreRounds} rounds), ` +
      `${fmt(r.removedBySample ?? 0)} outside the user sample. ` +
      `Items without a title: ${fmt(r.untitledItems)}.`,
  ].join('\n');
}
