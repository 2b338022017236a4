/**
 * Reports of an evolution experiment: a Markdown table (per period and averaged: HR@1, HR@3 and NDCG@3
 * for active, inactive and all users, update time and trainable share) and a self-contained HTML page
 * with inline SVG charts (no scripts, no external files): per-period NDCG@3 of active and inactive users
 * by strategy, quality against trainable share, and update time by strategy.
 */
import { PROBE_BOUND, probeBoundCheck } from '../eval/probes.js';
import type { ExperimentResults } from '../evolve/runner.js';
import { bootstrap, bootstrapRatio, metricOf, runValue, seedStat, stat, verdict, type Measure, type Stat } from './seeds.js';

const GROUPS = ['active', 'inactive', 'all'] as const;
/** The metrics of a view: the paper's headline on candidate sets, the literature's on the full catalogue. */
const metricsOf = (view: string) => (view === 'two-stage' || view === 'full' ? ['HR@10', 'NDCG@10', 'NDCG@20'] : ['HR@1', 'HR@3', 'NDCG@3']);
/** The (NDCG, HR) pair of a view's difference tables and base-model line. */
const headlineOf = (view: string) => (view === 'two-stage' || view === 'full' ? { ndcg: 'NDCG@10', hr: 'HR@10' } : { ndcg: 'NDCG@3', hr: 'HR@1' });

const BOOTSTRAP_NOTE = 'users resampled per period and seeds resampled, paired between strategies, 1,000 replicates';

type Row = { strategy: string; values: Record<string, Stat>; seconds: Stat; trainable: Stat; share: Stat; samples: Stat; peak: Stat };

const seconds: Measure = (u) => u.seconds;
const forgetSeconds: Measure = (u) => u.forgetSeconds ?? NaN;
const trainable: Measure = (u) => u.report.trainableParameters;
const share: Measure = (u) => (u.report.loraParameters > 0 ? u.report.trainableParameters / u.report.loraParameters : 0);
const samplesSeen: Measure = (u) => u.report.samplesSeen;
/** Peak memory of the update itself (records written before it was per update hold the process's mark: left out). */
const peakMb: Measure = (u) => (u.peakPerUpdate ? u.peakRssMb : NaN);

/** The strategies of the runs, in the order of the first run. */
const strategiesOf = (runs: ExperimentResults[]) => [...new Set(runs.flatMap((r) => r.strategies))];

function rowsFor(runs: ExperimentResults[], sampler: string, period: number | 'mean'): Row[] {
  return strategiesOf(runs).map((strategy) => {
    const values: Record<string, Stat> = {};
    for (const g of GROUPS) for (const m of metricsOf(sampler)) values[`${g} ${m}`] = bootstrap(runs, sampler, g, m, period, strategy);
    return {
      strategy,
      values,
      seconds: seedStat(runs, strategy, period, seconds),
      trainable: seedStat(runs, strategy, period, trainable),
      share: seedStat(runs, strategy, period, share),
      samples: seedStat(runs, strategy, period, samplesSeen),
      peak: seedStat(runs, strategy, period, peakMb),
    };
  });
}

const f4 = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : '–');
const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
/** "mean ± se" (the ± part only when there are several seeds). */
const pm = (s: Stat, digits = 4) => (Number.isFinite(s.mean) ? s.mean.toFixed(digits) + (Number.isFinite(s.se) ? ` ± ${s.se.toFixed(digits)}` : '') : '–');
const sign = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(4)}`;
/** A difference: signed mean with its 95% bootstrap interval (or ± se over seeds), marked when called. */
const signed = (s: Stat) => {
  if (!Number.isFinite(s.mean)) return '–';
  const v = verdict(s);
  const spread = s.lo !== undefined && s.hi !== undefined ? ` [${sign(s.lo)}, ${sign(s.hi)}]` : Number.isFinite(s.se) ? ` ± ${s.se.toFixed(4)}` : '';
  return `${sign(s.mean)}${spread}${v > 0 ? ' ▲' : v < 0 ? ' ▼' : ''}`;
};

type Baselines = Record<string, { groups: Partial<Record<string, { users: number; metrics: Record<string, number> }>> }>;

/** Baseline rows printed above the strategies (italic), in this order, when results.json has them: the model-free ones, then SASRec. */
const BASELINE_ROWS = ['random', 'popularity', 'least popular first', 'most recently first seen', 'sasrec'];

/** The line under a period's table: what the model-free rows mean, and the never-trained share. */
function probeNote(only: Baselines[string]['groups']): string {
  const share = (g: string) => (only[g] ? `${(only[g]!.metrics.share * 100).toFixed(1)}% of ${only[g]!.users.toLocaleString('en-US')} ${g}` : '');
  return (
    'Italic rows are baselines on the same sets: random\'s expectation, popularity (most trained first), ' +
    'least popular first and most recently first seen first (probes, without a model), and SASRec where the run has one (trained on ' +
    'the interactions up to the period, the sample\'s or with --sasrec-users all every user\'s: the Forget filter). A probe far from random means the candidate ' +
    `sets give the answer away (docs/evaluation.md). Sets whose positive is the only never-trained item: ${GROUPS.map(share).filter(Boolean).join(', ')}.`
  );
}

/** The probes held to the bound, in the "about the user" view only (popularity is a real baseline elsewhere). */
const BOUND_PROBES = ['popularity', 'least popular first', 'most recently first seen'];
export interface ProbeCell {
  period: number;
  group: string;
  probe: string;
  hr1: number;
  users: number;
  check: 'within' | 'noise' | 'outside';
}

/** Every probe cell (period × group × probe) of a run's matched view, with its bound check (`probeBoundCheck`). */
export function probeCells(results: ExperimentResults, sampler = 'matched'): ProbeCell[] {
  const out: ProbeCell[] = [];
  if (sampler !== 'matched') return out;
  for (let t = 1; t <= results.periods; t++) {
    const b = results.baselines[`p${t}`] ?? {};
    for (const g of GROUPS) {
      const random = b[`random/${sampler}`]?.groups[g]?.metrics['HR@1'];
      if (random === undefined) continue;
      for (const probe of BOUND_PROBES) {
        const cell = b[`${probe}/${sampler}`]?.groups[g];
        if (cell) out.push({ period: t, group: g, probe, hr1: cell.metrics['HR@1'], users: cell.users, check: probeBoundCheck(cell.metrics['HR@1'], cell.users, random) });
      }
    }
  }
  return out;
}

/** Under a two-stage table: the retriever's recall (the same SASRec for every strategy), and what the view is. */
function recallNote(runs: ExperimentResults[], sampler: string, t: number): string {
  if (sampler !== 'two-stage') return '';
  const u = runs[0].updates.find((x) => x.period === t && x.eval[sampler]);
  const g = u?.eval[sampler].groups;
  if (!g) return '';
  const key = Object.keys(g.all?.metrics ?? {}).find((k) => k.startsWith('recall@'));
  if (!key) return '';
  const depth = key.slice('recall@'.length);
  return (
    `Full catalogue: random, popularity and sasrec rank every item the user has not touched, exactly; each strategy's LLMRec re-ranks SASRec's top ${depth}, ` +
    `so a positive outside them is a miss. Retriever ${key}: ${GROUPS.map((x) => (g[x] ? `${x} ${g[x]!.metrics[key].toFixed(3)}` : '')).filter(Boolean).join(', ')}.`
  );
}

/** The line under a period's table that says whether its probes keep to the bound. */
function boundNote(cells: ProbeCell[]): string {
  if (cells.length === 0) return '';
  const list = (c: ProbeCell[]) => c.map((x) => `${x.group} ${x.probe} ${x.hr1.toFixed(3)} on ${x.users.toLocaleString('en-US')}`).join('; ');
  const noise = cells.filter((c) => c.check === 'noise');
  const outside = cells.filter((c) => c.check === 'outside');
  const head = `Probe bound (HR@1 within ${PROBE_BOUND.low}x-${PROBE_BOUND.high}x random's): ${cells.length - noise.length - outside.length} of ${cells.length} cells within`;
  const mid = noise.length ? `; ${noise.length} outside it by less than their 95% sampling interval at that many users (${list(noise)})` : '';
  const tail = outside.length ? `. **Yardstick alarm**: ${list(outside)} miss the bound beyond their interval, so these sets give the answer away.` : '; none beyond its interval.';
  return head + mid + tail;
}

function table(rows: Row[], sampler: string, baselines?: Baselines): string {
  const METRICS = metricsOf(sampler);
  const head = ['strategy', ...GROUPS.flatMap((g) => METRICS.map((m) => `${g} ${m}`)), 'update s', 'trainable', 'share of LoRA', 'samples', 'peak MB'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const [name, b] of Object.entries(baselines ?? {})) {
    lines.push(`| *${name}* | ${GROUPS.flatMap((g) => METRICS.map((m) => f4(b.groups[g]?.metrics[m] ?? NaN))).join(' | ')} | | | | | |`);
  }
  for (const r of rows) {
    lines.push(
      `| ${r.strategy} | ${GROUPS.flatMap((g) => METRICS.map((m) => pm(r.values[`${g} ${m}`]))).join(' | ')} | ${pm(r.seconds, 1)} | ${int(r.trainable.mean)} | ${Number.isFinite(r.share.mean) ? (r.share.mean * 100).toFixed(0) : '–'}% | ${int(r.samples.mean)} | ${int(r.peak.mean)} |`,
    );
  }
  return lines.join('\n');
}

/**
 * Paired differences a − b averaged over periods, one row per pair: NDCG@3 and HR@1 for active, inactive
 * and all users, and the ratio of update times. `label` names the row (the strategy that is not fixed).
 */
function differences(runs: ExperimentResults[], sampler: string, head: string, pairs: { a: string; b: string; label: string }[], time: 'ratio' | 'seconds' = 'ratio'): string {
  const { ndcg, hr } = headlineOf(sampler);
  const cols = [...GROUPS.map((g) => `${g} ${ndcg}`), ...GROUPS.map((g) => `${g} ${hr}`)];
  const timeHead = time === 'ratio' ? 'update time ratio' : 'update s';
  const lines = [`| ${head} | ${cols.join(' | ')} | ${timeHead} |`, `|---|${cols.map(() => '---:').join('|')}|---:|`];
  for (const { a, b, label } of pairs) {
    const cells = [...GROUPS.map((g) => signed(bootstrap(runs, sampler, g, ndcg, 'mean', a, b))), ...GROUPS.map((g) => signed(bootstrap(runs, sampler, g, hr, 'mean', a, b)))];
    if (time === 'seconds') {
      // Against static (which trains nothing, so no time to divide by): the strategy's own mean update time.
      const own = stat(runs.map((r) => runValue(r, a, 'mean', seconds)));
      lines.push(`| ${label} | ${cells.join(' | ')} | ${Number.isFinite(own.mean) ? own.mean.toFixed(1) : '–'} |`);
      continue;
    }
    const ratio = stat(runs.map((r) => {
      const ta = runValue(r, a, 'mean', seconds), tb = runValue(r, b, 'mean', seconds);
      return tb >= 0.1 ? ta / tb : NaN;
    }));
    lines.push(`| ${label} | ${cells.join(' | ')} | ${Number.isFinite(ratio.mean) ? `${ratio.mean.toFixed(2)}x` : '–'} |`);
  }
  return lines.join('\n');
}

/** The targets the EvoRec paper implies, against finetune (issue 15): each with its interval and whether it holds. */
export const PAPER_TARGETS = { inactiveLossShare: 0.5, activeGainShare: 2 / 3, timeRatio: 0.7 };

const interval = (s: Stat, digits = 2) => (s.lo !== undefined && s.hi !== undefined ? ` [${s.lo.toFixed(digits)}, ${s.hi.toFixed(digits)}]` : '');

/**
 * Whether `focus` (EvoRec) meets the paper's targets against finetune in this view, averaged over periods:
 * it loses at most half of finetune's inactive-user loss, keeps at least two thirds of finetune's
 * active-user gain (both relative to static, as ratios of paired differences on the same users with a
 * joint bootstrap), and updates in at most 0.7x finetune's time. A share is undefined where finetune
 * neither loses nor gains beyond its interval (nothing to share), and a target holds only when its whole
 * interval is on the right side.
 */
export function paperTargets(runs: ExperimentResults[], sampler: string, focus = 'evorec'): string[] {
  const { ndcg } = headlineOf(sampler);
  const lines: string[] = [];
  // Holds or fails only when the whole interval is on one side of the target.
  const holds = (s: Stat, ok: (x: number) => boolean) =>
    s.lo === undefined || s.hi === undefined
      ? 'not shown (no interval)'
      : ok(s.lo) && ok(s.hi)
      ? 'holds'
      : !ok(s.lo) && !ok(s.hi)
      ? 'fails'
      : `not shown (the interval crosses the target; the mean is on its ${ok(s.mean) ? 'right' : 'wrong'} side)`;
  // finetune's change over static, and what it means for the share: a share of a loss needs a loss.
  const change = (group: 'active' | 'inactive') => {
    const d = bootstrap(runs, sampler, group, ndcg, 'mean', 'finetune', 'static');
    const v = verdict(d);
    return { d, v, text: `finetune ${v > 0 ? 'raises' : v < 0 ? 'lowers' : 'changes'} ${group} users' ${ndcg} by ${signed(d)} over static${v === 0 ? ', not beyond its interval' : ''}` };
  };
  // The shares are bootstrapped only where they mean something (a ratio bootstrap per view is a report's costliest line).
  const inactive = change('inactive');
  if (inactive.v >= 0) lines.push(`- Inactive users: ${inactive.text}, so there is no loss for ${focus} to halve: the target is moot here.`);
  else {
    const loss = bootstrapRatio(runs, sampler, 'inactive', ndcg, ['static', focus], ['static', 'finetune']);
    if (loss) lines.push(`- Inactive users: ${focus} loses ${loss.mean.toFixed(2)}${interval(loss)} of finetune's ${ndcg} loss (${signed(inactive.d)}); target at most ${PAPER_TARGETS.inactiveLossShare}: ${holds(loss, (x) => x <= PAPER_TARGETS.inactiveLossShare)}.`);
  }
  const active = change('active');
  if (active.v <= 0) lines.push(`- Active users: ${active.text}, so there is no gain for ${focus} to keep two thirds of: the target is moot here.`);
  else {
    const gain = bootstrapRatio(runs, sampler, 'active', ndcg, [focus, 'static'], ['finetune', 'static']);
    if (gain) lines.push(`- Active users: ${focus} keeps ${gain.mean.toFixed(2)}${interval(gain)} of finetune's ${ndcg} gain (${signed(active.d)}); target at least ${PAPER_TARGETS.activeGainShare.toFixed(2)}: ${holds(gain, (x) => x >= PAPER_TARGETS.activeGainShare)}.`);
  }
  // focus's time in a measure over finetune's whole update time, per seed.
  const toFinetune = (m: Measure) => stat(runs.map((r) => runValue(r, focus, 'mean', m) / runValue(r, 'finetune', 'mean', seconds)));
  const ratio = toFinetune(seconds);
  const timeOk = Number.isFinite(ratio.mean) ? (ratio.n >= 2 && Number.isFinite(ratio.se) ? (ratio.mean + 2 * ratio.se <= PAPER_TARGETS.timeRatio ? 'holds' : ratio.mean - 2 * ratio.se > PAPER_TARGETS.timeRatio ? 'fails' : 'not shown (within two standard errors)') : ratio.mean <= PAPER_TARGETS.timeRatio ? 'holds on one seed' : 'fails on one seed') : '–';
  // The filter's share, where the records carry it: a filter trained on more users than the sample costs more.
  const filter = stat(runs.map((r) => runValue(r, focus, 'mean', forgetSeconds)));
  const alone = toFinetune((u) => u.seconds - (u.forgetSeconds ?? 0));
  const split = Number.isFinite(filter.mean) && filter.mean > 0 ? ` (its Forget filter's SASRec ${filter.mean.toFixed(1)} s a period of it; the update alone ${pm(alone, 2)}x)` : " (its Forget filter's training included)";
  lines.push(`- Update time: ${focus} takes ${pm(ratio, 2)}x finetune's${split}; target at most ${PAPER_TARGETS.timeRatio}x: ${timeOk}.`);
  return lines;
}

/**
 * The EvoRec variants ranked on validation (each update's best validation score during its training, the
 * headline view's validation users, averaged over periods and seeds): the variant to ship is the one that
 * wins here, never the one that wins on the test sets printed above. Empty with fewer than two variants.
 */
export function variantsOnValidation(runs: ExperimentResults[]): string[] {
  const variants = strategiesOf(runs).filter((s) => s === 'evorec' || s.startsWith('evorec-'));
  const rows = variants
    .map((name) => ({ name, s: seedStat(runs, name, 'mean', (u) => u.report.bestValid ?? NaN) }))
    .filter((r) => Number.isFinite(r.s.mean));
  if (rows.length < 2) return [];
  rows.sort((a, b) => b.s.mean - a.s.mean);
  return [
    '| variant | best validation NDCG@3 (mean over periods) |',
    '|---|---:|',
    ...rows.map((r) => `| ${r.name} | ${pm(r.s)} |`),
    '',
    `Best on validation: **${rows[0].name}**${rows.length > 1 && rows[0].s.mean === rows[1].s.mean ? ' (tied)' : ''}. The variant to ship is chosen here, not on the test figures above.`,
  ];
}

/**
 * The Markdown report of one or several runs (one per training seed) of the same experiment: a table per
 * period, the table averaged over periods, and the paired differences of the focus strategy.
 */
export function experimentMarkdown(input: ExperimentResults | ExperimentResults[], sampler = 'popularity', title: string | null = 'Evolution experiment', notes = ''): string {
  const runs = Array.isArray(input) ? input : [input];
  const first = runs[0];
  const n = runs.length;
  const kept = first.updates.some((u) => u.eval[sampler]?.sets);
  const seedsNote = kept
    ? `Each figure is the mean over ${n} training seed${n > 1 ? 's' : ''} ± its bootstrap standard error over users${n > 1 ? ' and seeds' : ''} (${BOOTSTRAP_NOTE}).`
    : n > 1
    ? `Each figure is the mean over ${n} training seeds ± its standard error (same users and candidates in every seed).`
    : 'One training seed: no standard errors, and no difference below can be called (run with --train-seeds 3 or more).';
  // title null: no heading line, for a section under another heading (a second sampler, the HTML page).
  const out = [...(title === null ? [] : [`# ${title}`]), '', `Candidates: ${sampler} negatives. Metrics per period on a fixed user sample; "share" is the trainable share of the strategy's LoRA parameters. ${seedsNote}${notes ? ` ${notes}` : ''}`, ''];
  for (let t = 1; t <= first.periods; t++) {
    const b = first.baselines[`p${t}`] ?? {};
    const base: Baselines = {};
    for (const name of BASELINE_ROWS) if (b[`${name}/${sampler}`]) base[name] = b[`${name}/${sampler}`];
    out.push(`## Period ${t}`, '', table(rowsFor(runs, sampler, t), sampler, Object.keys(base).length ? base : undefined), '');
    const users = b[`random/${sampler}`]?.groups;
    if (users) out.push(`Users behind each cell: ${[...GROUPS].map((g) => `${g} ${(users[g]?.users ?? 0).toLocaleString('en-US')}`).join(', ')}.`, '');
    const only = b[`never-trained only/${sampler}`]?.groups;
    if (only) out.push(probeNote(only), '');
    const bound = boundNote(probeCells(first, sampler).filter((c) => c.period === t));
    if (bound) out.push(bound, '');
    const recall = recallNote(runs, sampler, t);
    if (recall) out.push(recall, '');
  }
  out.push('## Averaged over periods', '', table(rowsFor(runs, sampler, 'mean'), sampler), '');
  const strategies = strategiesOf(runs);
  const focus = strategies.includes('evorec') ? 'evorec' : strategies[strategies.length - 1];
  if (strategies.length > 1) {
    const marks = kept
      ? '[lo, hi]: 95% paired bootstrap interval over users and seeds; ▲/▼: the interval excludes zero (called); unmarked: not distinguishable from zero.'
      : `▲/▼: the difference exceeds twice its standard error; unmarked: not distinguishable from zero at this number of seeds.`;
    const over = kept ? '' : n > 1 ? `, mean ± standard error over ${n} seeds` : '';
    out.push(
      `## ${focus} against each strategy`,
      '',
      `Paired differences averaged over periods (${focus} minus the other${over}). ${marks}`,
      '',
      differences(runs, sampler, `${focus} minus`, strategies.filter((s) => s !== focus).map((o) => ({ a: focus, b: o, label: o }))),
      '',
    );
    if (focus === 'evorec' && strategies.includes('finetune') && strategies.includes('static')) {
      out.push(`## The paper's targets (${sampler} view)`, '', `What the EvoRec paper implies against finetune, averaged over periods, with 95% paired bootstrap intervals over users and seeds (ratios of paired differences resampled jointly):`, '', ...paperTargets(runs, sampler), '');
    }
    const onValidation = variantsOnValidation(runs);
    if (onValidation.length) {
      out.push('## EvoRec variants on validation', '', 'The same in every view: validation uses the headline view\'s sets.', '', ...onValidation, '');
    }
    if (strategies.includes('static')) {
      const others = strategies.filter((s) => s !== 'static');
      out.push(
        '## Each strategy against static',
        '',
        `Paired differences averaged over periods (the strategy minus static${over}): what an update gains for active users and costs inactive ones. ${marks}`,
        '',
        differences(runs, sampler, 'strategy minus static', others.map((o) => ({ a: o, b: 'static', label: o })), 'seconds'),
        '',
      );
    }
  }
  const { ndcg, hr } = headlineOf(sampler);
  const base = stat(runs.map((r) => r.baselines.base?.[sampler]?.groups.all?.metrics[ndcg] ?? NaN));
  const baseHr = stat(runs.map((r) => r.baselines.base?.[sampler]?.groups.all?.metrics[hr] ?? NaN));
  if (base.n) {
    // SASRec on the same P0 sets, so the base is read beside the model it must beat.
    const sas = first.baselines.p0?.[`sasrec/${sampler}`]?.groups.all?.metrics;
    const beside = sas ? `; the run's SASRec up to P0 (the sample's, or every user's with --sasrec-users all), same sets: ${hr} ${f4(sas[hr])}, ${ndcg} ${f4(sas[ndcg])}` : '';
    out.push(`Base model at P0 (all users): ${hr} ${pm(baseHr)}, ${ndcg} ${pm(base)}${beside}.`, '');
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// HTML with inline SVG

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79'];
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** The y range of a chart: the data's range with a 10% margin, never below 0. */
function yRange(ys: number[]): [number, number] {
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (hi - lo < 1e-6) [lo, hi] = [lo - 0.01, hi + 0.01];
  const m = (hi - lo) * 0.1;
  return [Math.max(0, lo - m), hi + m];
}

function axes(w: number, h: number, pad: number, yMin: number, yMax: number, yLabel: string): string {
  const ticks = 5;
  let s = `<line x1="${pad}" y1="${h - pad}" x2="${w - 10}" y2="${h - pad}" stroke="#333"/><line x1="${pad}" y1="10" x2="${pad}" y2="${h - pad}" stroke="#333"/>`;
  for (let i = 0; i <= ticks; i++) {
    const v = yMin + ((yMax - yMin) * i) / ticks;
    const y = h - pad - ((h - pad - 10) * i) / ticks;
    s += `<line x1="${pad - 4}" y1="${y}" x2="${pad}" y2="${y}" stroke="#333"/><text x="${pad - 6}" y="${y + 4}" text-anchor="end" font-size="11">${v.toFixed(3)}</text>`;
  }
  s += `<text x="14" y="${h / 2}" transform="rotate(-90 14 ${h / 2})" text-anchor="middle" font-size="12">${esc(yLabel)}</text>`;
  return s;
}

function legend(names: string[], x: number): string {
  return names.map((n, i) => `<rect x="${x}" y="${14 + i * 16}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${x + 14}" y="${23 + i * 16}" font-size="11">${esc(n)}</text>`).join('');
}

function lineChart(title: string, series: { name: string; points: [number, Stat][] }[], periods: number): string {
  const w = 560, h = 300, pad = 56, plotW = w - pad - 150;
  const ys = series.flatMap((s) => s.points.flatMap(([, v]) => (Number.isFinite(v.se) ? [v.mean - v.se, v.mean + v.se] : [v.mean]))).filter(Number.isFinite);
  if (ys.length === 0) return '';
  const [lo, hi] = yRange(ys);
  // Strategies share x positions; a small offset per series keeps overlapping error bars apart.
  const X = (t: number, i = -1) => pad + (periods <= 1 ? plotW / 2 : ((t - 1) / (periods - 1)) * (plotW - 40) + 20) + (i < 0 ? 0 : (i - (series.length - 1) / 2) * 3);
  const Y = (v: number) => h - pad - ((v - lo) / (hi - lo)) * (h - pad - 10);
  let s = axes(w, h, pad, lo, hi, 'NDCG@3');
  for (let t = 1; t <= periods; t++) s += `<text x="${X(t)}" y="${h - pad + 16}" text-anchor="middle" font-size="11">P${t}</text>`;
  s += `<text x="${pad + plotW / 2}" y="${h - 12}" text-anchor="middle" font-size="12">period</text>`;
  series.forEach((se, i) => {
    const pts = se.points.filter((p) => Number.isFinite(p[1].mean));
    const c = COLORS[i % COLORS.length];
    s += `<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map(([t, v]) => `${X(t, i)},${Y(v.mean)}`).join(' ')}"/>`;
    for (const [t, v] of pts) {
      if (Number.isFinite(v.se)) s += `<line x1="${X(t, i)}" y1="${Y(v.mean - v.se)}" x2="${X(t, i)}" y2="${Y(v.mean + v.se)}" stroke="${c}" stroke-width="1.5"/>`;
      const label = `${se.name} P${t}: ${v.mean.toFixed(4)}${Number.isFinite(v.se) ? ` ± ${v.se.toFixed(4)}` : ''}`;
      s += `<circle cx="${X(t, i)}" cy="${Y(v.mean)}" r="3" fill="${c}"><title>${esc(label)}</title></circle>`;
    }
  });
  s += legend(series.map((x) => x.name), pad + plotW + 10);
  return `<figure><figcaption>${esc(title)}</figcaption><svg width="${w}" height="${h}" role="img" aria-label="${esc(title)}">${s}</svg></figure>`;
}

function scatter(title: string, pts: { name: string; x: number; y: number }[], xLabel: string): string {
  const w = 560, h = 300, pad = 56, plotW = w - pad - 150;
  const ys = pts.map((p) => p.y).filter(Number.isFinite);
  if (ys.length === 0) return '';
  const [lo, hi] = yRange(ys);
  const X = (x: number) => pad + 10 + x * (plotW - 20);
  const Y = (v: number) => h - pad - ((v - lo) / (hi - lo)) * (h - pad - 10);
  let s = axes(w, h, pad, lo, hi, 'NDCG@3 (all users)');
  for (const v of [0, 0.25, 0.5, 0.75, 1]) s += `<text x="${X(v)}" y="${h - pad + 16}" text-anchor="middle" font-size="11">${(v * 100).toFixed(0)}%</text>`;
  s += `<text x="${pad + plotW / 2}" y="${h - 12}" text-anchor="middle" font-size="12">${esc(xLabel)}</text>`;
  pts.forEach((p, i) => {
    if (!Number.isFinite(p.y)) return;
    s += `<circle cx="${X(p.x)}" cy="${Y(p.y)}" r="5" fill="${COLORS[i % COLORS.length]}"><title>${esc(p.name)}: ${(p.x * 100).toFixed(0)}%, ${p.y.toFixed(4)}</title></circle>`;
  });
  s += legend(pts.map((p) => p.name), pad + plotW + 10);
  return `<figure><figcaption>${esc(title)}</figcaption><svg width="${w}" height="${h}" role="img" aria-label="${esc(title)}">${s}</svg></figure>`;
}

function bars(title: string, items: { name: string; value: number }[], unit: string): string {
  const w = 560, rowH = 22, pad = 140, h = items.length * rowH + 30;
  const max = Math.max(1e-9, ...items.map((i) => i.value).filter(Number.isFinite));
  let s = '';
  items.forEach((it, i) => {
    const y = 10 + i * rowH;
    const bw = Number.isFinite(it.value) ? ((w - pad - 80) * it.value) / max : 0;
    s += `<text x="${pad - 6}" y="${y + 14}" text-anchor="end" font-size="12">${esc(it.name)}</text>`;
    s += `<rect x="${pad}" y="${y}" width="${bw}" height="${rowH - 6}" fill="${COLORS[i % COLORS.length]}"/>`;
    s += `<text x="${pad + bw + 6}" y="${y + 14}" font-size="11">${Number.isFinite(it.value) ? it.value.toFixed(1) : '–'} ${unit}</text>`;
  });
  return `<figure><figcaption>${esc(title)}</figcaption><svg width="${w}" height="${h}" role="img" aria-label="${esc(title)}">${s}</svg></figure>`;
}

/** Minimal Markdown table to HTML (the tables this module writes). */
function mdToHtml(md: string): string {
  const out: string[] = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l.startsWith('# ')) out.push(`<h1>${esc(l.slice(2))}</h1>`);
    else if (l.startsWith('## ')) out.push(`<h2>${esc(l.slice(3))}</h2>`);
    else if (l.startsWith('|')) {
      const rows: string[][] = [];
      while (i < lines.length && lines[i].startsWith('|')) {
        if (!/^\|[-:|]+\|$/.test(lines[i])) rows.push(lines[i].slice(1, -1).split('|').map((c) => c.trim()));
        i++;
      }
      i--;
      const [head, ...body] = rows;
      out.push(`<table><thead><tr>${head.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>${body.map((r) => `<tr>${r.map((c) => `<td>${esc(c.replace(/^\*(.*)\*$/, '$1'))}</td>`).join('')}</tr>`).join('')}</tbody></table>`);
    } else if (l.trim()) out.push(`<p>${esc(l)}</p>`);
  }
  return out.join('\n');
}

export function experimentHtml(input: ExperimentResults | ExperimentResults[], sampler = 'popularity', title = 'Evolution experiment', notes: string | string[] = ''): string {
  const runs = Array.isArray(input) ? input : [input];
  const names = strategiesOf(runs);
  const periods = runs[0].periods;
  const series = (g: string) =>
    names.map((n) => ({ name: n, points: Array.from({ length: periods }, (_, i) => [i + 1, bootstrap(runs, sampler, g, 'NDCG@3', i + 1, n)] as [number, Stat]) }));
  const avg = rowsFor(runs, sampler, 'mean');
  const errorBars = runs.length > 1 ? ` (mean ± standard error over ${runs.length} seeds)` : '';
  const charts = [
    lineChart(`NDCG@3 of active users, by period${errorBars}`, series('active'), periods),
    lineChart(`NDCG@3 of inactive users, by period${errorBars}`, series('inactive'), periods),
    scatter('Quality against trainable share (averaged over periods)', avg.map((r) => ({ name: r.strategy, x: r.share.mean, y: r.values['all NDCG@3'].mean })), 'trainable share of LoRA parameters'),
    bars('Update time by strategy (mean per period)', avg.map((r) => ({ name: r.strategy, value: r.seconds.mean })), 's'),
  ].join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
table{border-collapse:collapse;font-size:13px;margin:0.5rem 0 1.5rem}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th:first-child,td:first-child{text-align:left}thead{background:#f3f3f3}
.charts{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0;border:1px solid #eee;padding:0.5rem;width:560px}figcaption{font-weight:600;margin-bottom:0.3rem}
</style></head><body>
<h1>${esc(title)}</h1>
${(Array.isArray(notes) ? notes : [notes]).filter(Boolean).map((n) => `<p>${esc(n)}</p>`).join('\n')}
<div class="charts">${charts}</div>
${mdToHtml(experimentMarkdown(runs, sampler, null))}
</body></html>
`;
}
