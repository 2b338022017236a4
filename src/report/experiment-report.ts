/**
 * Reports of an evolution experiment: a Markdown table (per period and averaged: HR@1, HR@3 and NDCG@3
 * for active, inactive and all users, update time and trainable share) and a self-contained HTML page
 * with inline SVG charts (no scripts, no external files): per-period NDCG@3 of active and inactive users
 * by strategy, quality against trainable share, and update time by strategy.
 */
import type { ExperimentResults, UpdateRecord } from '../evolve/runner.js';

const GROUPS = ['active', 'inactive', 'all'] as const;
const METRICS = ['HR@1', 'HR@3', 'NDCG@3'] as const;

type Row = { strategy: string; values: Record<string, number>; seconds: number; trainable: number; share: number; samples: number };

const metric = (u: UpdateRecord, sampler: string, g: string, m: string) => u.eval[sampler]?.groups[g as 'all']?.metrics[m] ?? NaN;

function rowsFor(results: ExperimentResults, sampler: string, period: number | 'mean'): Row[] {
  return results.strategies.map((strategy) => {
    const ups = results.updates.filter((u) => u.strategy === strategy && (period === 'mean' || u.period === period));
    const values: Record<string, number> = {};
    for (const g of GROUPS) for (const m of METRICS) values[`${g} ${m}`] = mean(ups.map((u) => metric(u, sampler, g, m)));
    return {
      strategy,
      values,
      seconds: mean(ups.map((u) => u.seconds)),
      trainable: mean(ups.map((u) => u.report.trainableParameters)),
      share: mean(ups.map((u) => (u.report.loraParameters > 0 ? u.report.trainableParameters / u.report.loraParameters : 0))),
      samples: mean(ups.map((u) => u.report.samplesSeen)),
    };
  });
}

function mean(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
}

const f4 = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : '–');
const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');

function table(rows: Row[], baselines?: Record<string, { groups: Record<string, { metrics: Record<string, number> } | undefined> }>): string {
  const head = ['strategy', ...GROUPS.flatMap((g) => METRICS.map((m) => `${g} ${m}`)), 'update s', 'trainable', 'share of LoRA', 'samples'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const [name, b] of Object.entries(baselines ?? {})) {
    lines.push(`| *${name}* | ${GROUPS.flatMap((g) => METRICS.map((m) => f4(b.groups[g]?.metrics[m] ?? NaN))).join(' | ')} | | | | |`);
  }
  for (const r of rows) {
    lines.push(`| ${r.strategy} | ${GROUPS.flatMap((g) => METRICS.map((m) => f4(r.values[`${g} ${m}`]))).join(' | ')} | ${r.seconds.toFixed(1)} | ${int(r.trainable)} | ${(r.share * 100).toFixed(0)}% | ${int(r.samples)} |`);
  }
  return lines.join('\n');
}

export function experimentMarkdown(results: ExperimentResults, sampler = 'popularity', title = 'Evolution experiment'): string {
  const out = [`# ${title}`, '', `Candidates: ${sampler} negatives. Metrics per period on a fixed user sample; "share" is the trainable share of the strategy's LoRA parameters.`, ''];
  for (let t = 1; t <= results.periods; t++) {
    const b = results.baselines[`p${t}`] ?? {};
    const base = { random: b[`random/${sampler}`], popularity: b[`popularity/${sampler}`] };
    out.push(`## Period ${t}`, '', table(rowsFor(results, sampler, t), base.random && base.popularity ? base : undefined), '');
  }
  out.push('## Averaged over periods', '', table(rowsFor(results, sampler, 'mean')), '');
  const base = results.baselines.base?.[sampler]?.groups.all?.metrics;
  if (base) out.push(`Base model at P0 (all users): HR@1 ${f4(base['HR@1'])}, HR@3 ${f4(base['HR@3'])}, NDCG@3 ${f4(base['NDCG@3'])}.`, '');
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

function lineChart(title: string, series: { name: string; points: [number, number][] }[], periods: number): string {
  const w = 560, h = 300, pad = 56, plotW = w - pad - 150;
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  if (ys.length === 0) return '';
  const [lo, hi] = yRange(ys);
  const X = (t: number) => pad + (periods <= 1 ? plotW / 2 : ((t - 1) / (periods - 1)) * (plotW - 20) + 10);
  const Y = (v: number) => h - pad - ((v - lo) / (hi - lo)) * (h - pad - 10);
  let s = axes(w, h, pad, lo, hi, 'NDCG@3');
  for (let t = 1; t <= periods; t++) s += `<text x="${X(t)}" y="${h - pad + 16}" text-anchor="middle" font-size="11">P${t}</text>`;
  series.forEach((se, i) => {
    const pts = se.points.filter((p) => Number.isFinite(p[1]));
    const c = COLORS[i % COLORS.length];
    s += `<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map(([t, v]) => `${X(t)},${Y(v)}`).join(' ')}"/>`;
    s += pts.map(([t, v]) => `<circle cx="${X(t)}" cy="${Y(v)}" r="3" fill="${c}"><title>${esc(se.name)} P${t}: ${v.toFixed(4)}</title></circle>`).join('');
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

export function experimentHtml(results: ExperimentResults, sampler = 'popularity', title = 'Evolution experiment', notes = ''): string {
  const names = results.strategies;
  const series = (g: string) =>
    names.map((n) => ({ name: n, points: results.updates.filter((u) => u.strategy === n).sort((a, b) => a.period - b.period).map((u) => [u.period, metric(u, sampler, g, 'NDCG@3')] as [number, number]) }));
  const avg = rowsFor(results, sampler, 'mean');
  const charts = [
    lineChart('NDCG@3 of active users, by period', series('active'), results.periods),
    lineChart('NDCG@3 of inactive users, by period', series('inactive'), results.periods),
    scatter('Quality against trainable share (averaged over periods)', avg.map((r) => ({ name: r.strategy, x: r.share, y: r.values['all NDCG@3'] })), 'trainable share of LoRA parameters'),
    bars('Update time by strategy (mean per period)', avg.map((r) => ({ name: r.strategy, value: r.seconds })), 's'),
  ].join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
table{border-collapse:collapse;font-size:13px;margin:0.5rem 0 1.5rem}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th:first-child,td:first-child{text-align:left}thead{background:#f3f3f3}
.charts{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0;border:1px solid #eee;padding:0.5rem}figcaption{font-weight:600;margin-bottom:0.3rem}
</style></head><body>
${notes ? `<p>${esc(notes)}</p>` : ''}
<div class="charts">${charts}</div>
${mdToHtml(experimentMarkdown(results, sampler, title))}
</body></html>
`;
}
