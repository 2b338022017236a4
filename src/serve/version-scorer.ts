/**
 * One model version as a scoring worker holds it: the LLMRec over the catalogue's titles and, when the
 * version folder has one, its SASRec retriever (`<folder>/sasrec`, as saveSASRec writes it) with the map
 * between the retriever's item ids and the catalogue's indices.
 *
 * Two kinds of work, each for a batch of users in one call:
 * - `given`: LLMRec scores of given candidate lists (one LLMRec.score call, all users in one forward);
 * - `full`: the full catalogue, through the same two-stage function as the yardstick's view
 *   (eval/full-ranking.ts `twoStage`): the SASRec's top `depth` items the user has not interacted with,
 *   re-ranked by LLMRec.
 * Item indices are the catalogue's (the order items entered it); histories are oldest first.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { twoStage } from '../eval/full-ranking.js';
import { LLMRec } from '../models/llmrec.js';
import { loadLLMRec } from '../models/llmrec-io.js';
import { PromptBuilder } from '../models/prompt.js';
import type { SASRec } from '../models/sasrec.js';
import { loadSASRec } from '../models/sasrec-io.js';

/** The sub-folder of a version folder that holds its SASRec retriever. */
export const RETRIEVER_FOLDER = 'sasrec';

/** The catalogue as the worker holds it; the arrays grow as items are added (shared with the prompt builders). */
export interface Catalogue {
  ids: string[];
  titles: string[];
  index: Map<string, number>;
}

export interface VersionInfo {
  /** LLMRec's history window H (the prompt's last H titles). */
  history: number;
  /** Upper bound of a prompt's length in tokens (H titles at their token budget and the template). */
  promptTokens: number;
  /** Longest answer in tokens (the title budget and end-of-sequence). */
  answerTokens: number;
  /** The retriever: its item count, its history window, and how many of its items are in the catalogue. */
  retriever: { items: number; maxLen: number; inCatalogue: number } | null;
}

export interface LoadLimits {
  /** Largest prompt (and answer) a version may build, in tokens. */
  maxPromptTokens: number;
}

export interface GivenJob {
  kind: 'given';
  history: number[];
  candidates: number[];
}

export interface FullJob {
  kind: 'full';
  /** The user's recent items (at least the longer of H and the retriever's window). */
  history: number[];
  /** Every item the user interacted with (never recommended). */
  seen: number[];
  depth: number;
}

/** A full-catalogue result: the re-ranked items with their LLMRec scores, or null when the retriever knows none of the history. */
export type FullResult = { items: number[]; scores: Float32Array } | null;

interface Retriever {
  model: SASRec;
  ids: string[];
  /** Retriever index -> catalogue index (-1: not in the catalogue yet). */
  toCatalogue: Int32Array;
  /** Catalogue index -> retriever index. */
  fromCatalogue: Map<number, number>;
}

/** Upper bound of the prompt's token count: the template, and H titles at their budget with their line prefixes. */
export function promptTokenBound(p: PromptBuilder): number {
  const o = p.options;
  const t = o.template;
  const suffix = t.itemSuffix ? p.tokenizer.encode(t.itemSuffix).length : 0;
  let n = p.prompt([]).length;
  for (let i = 1; i <= o.history; i++) n += p.tokenizer.encode(t.itemPrefix.replace('{i}', String(i))).length + o.titleTokens + suffix;
  return n;
}

export class VersionScorer {
  private constructor(
    private llmrec: LLMRec,
    private readonly retriever: Retriever | null,
    private readonly catalogue: Catalogue,
  ) {
    this.catalogueGrew(0);
  }

  /** Loads a version folder over the catalogue; refuses one whose prompts exceed the limits. */
  static async load(folder: string, catalogue: Catalogue, limits: LoadLimits): Promise<VersionScorer> {
    const { model } = await loadLLMRec(folder, catalogue.titles);
    const prompt = promptTokenBound(model.prompts);
    const o = model.prompts.options;
    if (prompt > limits.maxPromptTokens) {
      throw new RangeError(`${folder}: prompts of up to ${prompt} tokens (H = ${o.history} titles of up to ${o.titleTokens} tokens) are above the service's limit of ${limits.maxPromptTokens} tokens (--max-prompt-tokens)`);
    }
    if (o.targetTokens + 1 > limits.maxPromptTokens) {
      throw new RangeError(`${folder}: answers of up to ${o.targetTokens + 1} tokens (prompt.targetTokens ${o.targetTokens}) are above the service's limit of ${limits.maxPromptTokens} tokens (--max-prompt-tokens)`);
    }
    let retriever: Retriever | null = null;
    const dir = join(folder, RETRIEVER_FOLDER);
    if (existsSync(dir)) {
      const { model: sasrec, itemIds } = await loadSASRec(dir);
      retriever = { model: sasrec, ids: itemIds, toCatalogue: new Int32Array(itemIds.length).fill(-1), fromCatalogue: new Map() };
    }
    return new VersionScorer(model, retriever, catalogue);
  }

  info(): VersionInfo {
    const p = this.llmrec.prompts;
    const r = this.retriever;
    return {
      history: p.options.history,
      promptTokens: promptTokenBound(p),
      answerTokens: p.options.targetTokens + 1,
      retriever: r ? { items: r.ids.length, maxLen: r.model.config.maxLen, inCatalogue: r.fromCatalogue.size } : null,
    };
  }

  /** Titles changed: a fresh prompt builder (titles are tokenised once and cached per index). */
  titlesChanged(): void {
    const m = this.llmrec;
    this.llmrec = new LLMRec(m.decoder, new PromptBuilder(m.prompts.tokenizer, this.catalogue.titles, m.prompts.options), m.scoring);
  }

  /** Items from catalogue index `from` on were added: those the retriever knows enter its map. */
  catalogueGrew(from: number): void {
    const r = this.retriever;
    if (!r) return;
    const byId = new Map<string, number>();
    for (let i = from; i < this.catalogue.ids.length; i++) byId.set(this.catalogue.ids[i], i);
    r.ids.forEach((id, j) => {
      const c = byId.get(id);
      if (c !== undefined && r.toCatalogue[j] < 0) {
        r.toCatalogue[j] = c;
        r.fromCatalogue.set(c, j);
      }
    });
  }

  /** LLMRec scores of each job's candidates after its history: one LLMRec.score call for the batch. */
  given(jobs: readonly GivenJob[]): Float32Array[] {
    if (jobs.length === 0) return [];
    return this.llmrec.score(jobs.map((j) => j.history), jobs.map((j) => j.candidates), { usersPerBatch: jobs.length });
  }

  /** The two-stage full-catalogue ranking of each job (null for a job whose history the retriever does not know). */
  async full(jobs: readonly FullJob[]): Promise<FullResult[]> {
    const r = this.retriever;
    if (!r) throw new Error('this version has no retriever');
    const out: FullResult[] = jobs.map(() => null);
    const inputs = jobs
      .map((job, j) => ({ j, job, seq: job.history.map((c) => r.fromCatalogue.get(c)).filter((x): x is number => x !== undefined), seen: new Set(job.seen) }))
      .filter((x) => x.seq.length > 0);
    // One call per depth (every job of a batch asks the service's depth; grouped all the same).
    for (const depth of new Set(inputs.map((x) => x.job.depth))) {
      const group = inputs.filter((x) => x.job.depth === depth);
      const { lists, scores } = await twoStage(
        group,
        (xs) => r.model.scoreAll(xs.map((x) => x.seq)),
        (x) => (i) => r.toCatalogue[i] >= 0 && !x.seen.has(r.toCatalogue[i]),
        (xs, ls) => this.llmrec.score(xs.map((x) => x.job.history), ls.map((l) => l.map((i) => r.toCatalogue[i])), { usersPerBatch: xs.length }),
        depth,
      );
      group.forEach((x, g) => (out[x.j] = { items: lists[g].map((i) => r.toCatalogue[i]), scores: Float32Array.from(scores[g]) }));
    }
    return out;
  }
}
