/**
 * The served model: the active version's LLMRec, with the catalogue's titles by item index (the order in
 * which items entered the catalogue). Swapping versions is one assignment of `current`, done only after
 * the new version has loaded completely, so a request is answered by the old model or the new one, never
 * by a half-loaded one.
 */
import { LLMRec } from '../models/llmrec.js';
import { loadLLMRec, type LLMRecManifest } from '../models/llmrec-io.js';
import { PromptBuilder } from '../models/prompt.js';
import type { Item, ModelVersion } from './storage.js';

export interface LoadedVersion {
  version: ModelVersion;
  model: LLMRec;
  manifest: LLMRecManifest;
}

export class ModelHost {
  /** Titles by item index; grows as items are added (the prompt builder reads it lazily). */
  private titles: string[] = [];
  private readonly index = new Map<string, number>();
  current: LoadedVersion | null = null;

  setCatalogue(items: readonly Item[]): void {
    let changed = false;
    for (const it of items) {
      const k = this.index.get(it.id);
      if (k === undefined) {
        this.index.set(it.id, this.titles.length);
        this.titles.push(it.title);
      } else if (this.titles[k] !== it.title) {
        this.titles[k] = it.title;
        changed = true;
      }
    }
    // Titles are tokenised once and cached per index: a changed title needs a fresh prompt builder.
    if (changed && this.current) this.current = { ...this.current, model: this.rebuild(this.current.model) };
  }

  /** The same model, prompt settings and scoring settings (the folder's), over the catalogue's titles. */
  private rebuild(m: LLMRec): LLMRec {
    return new LLMRec(m.decoder, new PromptBuilder(m.prompts.tokenizer, this.titles, m.prompts.options), m.scoring);
  }

  title(id: string): string {
    const k = this.index.get(id);
    return k === undefined ? '' : this.titles[k];
  }

  itemIndex(id: string): number | undefined {
    return this.index.get(id);
  }

  get historyLength(): number {
    return this.current?.model.prompts.options.history ?? 10;
  }

  /** Loads a version's folder (does not serve it yet). */
  async load(version: ModelVersion): Promise<LoadedVersion> {
    const { model, manifest } = await loadLLMRec(version.folder, this.titles);
    return { version, model: this.rebuild(model), manifest };
  }

  /** Serves a loaded version from now on. */
  swap(next: LoadedVersion): void {
    this.current = next;
  }

  private switching: Promise<unknown> = Promise.resolve();

  /**
   * Runs `f` (a load, an activation, a swap) after every switch already started: a request's activation,
   * an evolution's, and the replica sync picking up another replica's never interleave (one would swap
   * in what the other had just replaced, or both would load the same folder).
   */
  exclusive<T>(f: () => Promise<T>): Promise<T> {
    const run = this.switching.then(f);
    this.switching = run.catch(() => {});
    return run;
  }

  /** Scores candidate item ids after a history of item ids (oldest first). */
  score(history: readonly string[], candidates: readonly string[]): Float32Array {
    const cur = this.current;
    if (!cur) throw new Error('no active model');
    const h = history.map((id) => this.index.get(id)!);
    const c = candidates.map((id) => this.index.get(id)!);
    return cur.model.score([h], [c])[0];
  }
}
