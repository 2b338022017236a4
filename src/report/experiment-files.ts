/**
 * The files of an experiment folder that hold and present its results: `results.json` (format
 * `evorec-experiment-seeds/1`, every seed's results), `results.md` (one section per view) and
 * `report.html`. Written by `runExperiment` (src/experiment) after each seed and by `evorec report`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExperimentResults, ExperimentView } from '../evolve/runner.js';
import { writeFileAtomic } from '../util/fs.js';
import { experimentHtml, experimentMarkdown } from './experiment-report.js';

/** What `<out>/results.json` of an experiment holds: every seed's results and how to report them. */
export interface SeedsResults {
  format: 'evorec-experiment-seeds/1';
  title?: string;
  /** How the run was started (the command line, or a description a library caller gives). */
  command?: string;
  samplers?: ExperimentView[];
  /** The LLMRec folder every seed started from (`--base-model`); absent when each seed trained its own base adapter. */
  baseModel?: string;
  seeds: number[];
  runs: ExperimentResults[];
}

/** Writes results.json, results.md (one section per sampler) and report.html; returns the Markdown. */
export function writeExperimentReports(out: string, r: SeedsResults): string {
  const title = r.title ?? `Evolution experiment, ${r.runs.length} training seed${r.runs.length > 1 ? 's' : ''}`;
  // Results written before the samplers were recorded used the first protocol.
  const samplers = r.samplers ?? ['popularity'];
  // Only a run that records its command (evorec experiment, runExperiment) knows how its base model was made.
  const baseNote = !r.command
    ? ''
    : r.baseModel
    ? `Base model: ${r.baseModel}, shared by every seed (the seeds vary the updates only, so static has no spread).`
    : 'Base model: a LoRA adapter trained on P0 in each seed.';
  const md = samplers.map((x, i) => experimentMarkdown(r.runs, x, i === 0 ? title : null, baseNote)).join('\n');
  writeFileAtomic(join(out, 'results.md'), md);
  writeFileAtomic(join(out, 'report.html'), experimentHtml(r.runs, samplers[0], title, [r.command ? `Command: ${r.command}` : '', baseNote]));
  writeFileAtomic(join(out, 'results.json'), JSON.stringify(r, null, 2) + '\n');
  return md;
}

/** Reads `<out>/results.json` of an experiment (several seeds) or of one runner (one seed). */
export function readExperimentResults(out: string): SeedsResults {
  const file = join(out, 'results.json');
  if (!existsSync(file)) throw new RangeError(`${file}: not found (run evorec experiment first)`);
  const j = JSON.parse(readFileSync(file, 'utf8')) as SeedsResults | ExperimentResults;
  if (j.format === 'evorec-experiment-seeds/1') {
    if (!Array.isArray(j.runs) || j.runs.length === 0) throw new RangeError(`${file}: field "runs": no finished seed to report (run evorec experiment until a seed finishes)`);
    return j;
  }
  if (j.format === 'evorec-experiment/1') {
    // One seed's folder: its views are the keys of its evaluations, the headline first (as written).
    const views = Object.keys(j.updates.find((u) => u.eval)?.eval ?? {}) as ExperimentView[];
    return { format: 'evorec-experiment-seeds/1', seeds: [0], runs: [j], ...(views.length ? { samplers: views } : {}) };
  }
  throw new RangeError(`${file}: field "format": expected evorec-experiment-seeds/1 or evorec-experiment/1, got ${JSON.stringify((j as { format?: unknown }).format)}`);
}
