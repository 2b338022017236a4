/**
 * Merging seed runs made apart (`evorec merge-seeds`): the experiment may run seed by seed, in several
 * runs on different days or machines, each with its own --out and --first-train-seed. Each seed folder
 * records the options it was trained with (`seed-<k>/options.json`); the merge checks that every seed was
 * made with the same options (all but the seed), that no seed comes twice, and writes one
 * results.json / results.md / report.html over all of them, with `merged-from.json` naming the sources.
 * The merged folder holds reports only: models and adapters stay in the source folders.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ExperimentResults } from '../evolve/runner.js';
import { parseJsonText } from '../io/json.js';
import { writeExperimentReports, type SeedsResults } from '../report/experiment-files.js';
import { writeFileAtomic } from '../util/fs.js';

/** Options that may differ between the merged seeds: which seeds a run made. */
const PER_RUN = new Set(['firstTrainSeed', 'trainSeed']);

function readJson(file: string): Record<string, unknown> {
  if (!existsSync(file)) throw new RangeError(`${file}: not found`);
  // The project's JSON reader: its message names the line and column, never quotes the text.
  const j = parseJsonText(readFileSync(file, 'utf8'), file, (m) => new RangeError(`${file}: ${m}`));
  if (j === null || typeof j !== 'object' || Array.isArray(j)) throw new RangeError(`${file}: expected a JSON object`);
  return j as Record<string, unknown>;
}

/** The finished seeds of one experiment folder, with the options each was made with. */
function seedsOf(dir: string): { seed: number; folder: string; options: Record<string, unknown>; results: ExperimentResults }[] {
  if (!existsSync(dir)) throw new RangeError(`${dir}: not found`);
  const runOptions = readJson(join(dir, 'options.json'));
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const m = /^seed-(\d+)$/.exec(name);
    if (!m) continue;
    const folder = join(dir, name);
    const resultsFile = join(folder, 'results.json');
    if (!existsSync(resultsFile)) continue; // a seed that has not started its updates
    const results = readJson(resultsFile) as unknown as ExperimentResults;
    if (results.format !== 'evorec-experiment/1') throw new RangeError(`${resultsFile}: field "format": expected evorec-experiment/1, got ${JSON.stringify(results.format)}`);
    // Seed folders of runs made before they recorded their options carry the run's.
    const options = existsSync(join(folder, 'options.json')) ? readJson(join(folder, 'options.json')) : runOptions;
    out.push({ seed: Number(m[1]), folder, options, results });
  }
  return out;
}

/** A seed is finished when every strategy has every period's update. */
function finished(r: ExperimentResults): boolean {
  return r.strategies.every((s) => Array.from({ length: r.periods }, (_, i) => i + 1).every((t) => r.updates.some((u) => u.strategy === s && u.period === t)));
}

/**
 * Merges the finished seeds of `sources` into `out`. Refuses seeds made with other options (naming the
 * folder and the option), a seed found twice, and unfinished seeds (named; they are left out only with
 * `allowUnfinished`).
 */
export function mergeSeeds(out: string, sources: readonly string[], opts: { title?: string; command?: string; allowUnfinished?: boolean } = {}): SeedsResults {
  if (sources.length === 0) throw new RangeError('merge-seeds: expected at least one experiment folder');
  const all = sources.flatMap((d) => seedsOf(resolve(d)));
  if (all.length === 0) throw new RangeError(`merge-seeds: no seed folder with results in ${sources.join(', ')}`);
  const ref = all[0];
  for (const s of all.slice(1)) {
    for (const key of new Set([...Object.keys(ref.options), ...Object.keys(s.options)])) {
      if (PER_RUN.has(key)) continue;
      const a = JSON.stringify(ref.options[key] ?? null);
      const b = JSON.stringify(s.options[key] ?? null);
      if (a !== b) throw new RangeError(`${s.folder}: made with ${key} ${b}, but ${ref.folder} with ${a}; only seeds of the same options merge`);
    }
  }
  const bySeed = new Map<number, string>();
  for (const s of all) {
    const other = bySeed.get(s.seed);
    if (other) throw new RangeError(`seed ${s.seed} is in both ${other} and ${s.folder}; merge each seed once`);
    bySeed.set(s.seed, s.folder);
  }
  const unfinished = all.filter((s) => !finished(s.results));
  if (unfinished.length && !opts.allowUnfinished) {
    throw new RangeError(`unfinished seeds: ${unfinished.map((s) => s.folder).join(', ')} (finish them with evorec experiment, or pass --allow-unfinished to leave them out)`);
  }
  const kept = all.filter((s) => finished(s.results)).sort((a, b) => a.seed - b.seed);
  const sourceResults = sources.map((d) => join(resolve(d), 'results.json')).filter(existsSync).map((f) => readJson(f) as unknown as Partial<SeedsResults>);
  const first = sourceResults[0] ?? {};
  const merged: SeedsResults = {
    format: 'evorec-experiment-seeds/1',
    title: opts.title ?? first.title?.replace(/\d+ training seeds?/, `${kept.length} training seed${kept.length > 1 ? 's' : ''}`),
    command: opts.command,
    samplers: first.samplers,
    baseModel: first.baseModel,
    seeds: kept.map((s) => s.seed),
    runs: kept.map((s) => s.results),
  };
  mkdirSync(out, { recursive: true });
  writeFileAtomic(join(out, 'merged-from.json'), JSON.stringify({ sources: sources.map((d) => resolve(d)), seeds: kept.map((s) => ({ seed: s.seed, folder: s.folder })), commands: sourceResults.map((r) => r.command ?? null) }, null, 2) + '\n');
  writeExperimentReports(out, merged);
  return merged;
}
