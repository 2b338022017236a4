/**
 * LLMRec prompts: an instruction, the last H item titles of the user's history (each truncated to a
 * token budget), then the answer slot; the target is the next item's title followed by end-of-sequence.
 *
 * Prompts are assembled from cached token ids of each piece (instruction, per-item line, answer cue),
 * not by tokenising one long string: every title is tokenised once, training and scoring see exactly the
 * same ids, and a 20-candidate ranking costs no tokenisation at all.
 */
import type { Tokenizer } from '../tokenizer/index.js';

export interface PromptTemplate {
  /** Text before the history. */
  instruction: string;
  /** Text before each history title. `{i}` is replaced by the 1-based position. */
  itemPrefix: string;
  /** Text after each history title. */
  itemSuffix: string;
  /** Text after the history, before the answer. */
  answerCue: string;
}

export const DEFAULT_TEMPLATE: PromptTemplate = {
  instruction: 'A customer bought these items, oldest first:',
  itemPrefix: '\n{i}. ',
  itemSuffix: '',
  answerCue: '\nThe next item the customer buys is:',
};

export interface PromptOptions {
  template: PromptTemplate;
  /** History window H (most recent items). */
  history: number;
  /** Token budget of each history title. */
  titleTokens: number;
  /** Token budget of the target title (before end-of-sequence). */
  targetTokens: number;
}

export const DEFAULT_PROMPT: PromptOptions = { template: DEFAULT_TEMPLATE, history: 10, titleTokens: 24, targetTokens: 32 };

export class PromptBuilder {
  readonly options: PromptOptions;
  private readonly instruction: number[];
  private readonly answerCue: number[];
  private readonly suffix: number[];
  private readonly prefixes: number[][] = [];
  private readonly titleIds: Array<number[] | undefined>;
  private readonly answerIds: Array<number[] | undefined>;

  constructor(
    readonly tokenizer: Tokenizer,
    readonly titles: readonly string[],
    options: Partial<PromptOptions> = {},
  ) {
    this.options = { ...DEFAULT_PROMPT, ...options, template: { ...DEFAULT_TEMPLATE, ...options.template } };
    const t = this.options.template;
    // A tokenizer that starts every sequence with bos (Llama's) gets it at the start of every prompt.
    const bos = tokenizer.addBos && tokenizer.specialIds.bos !== undefined ? [tokenizer.specialIds.bos] : [];
    this.instruction = [...bos, ...tokenizer.encode(t.instruction)];
    this.answerCue = tokenizer.encode(t.answerCue);
    this.suffix = t.itemSuffix ? tokenizer.encode(t.itemSuffix) : [];
    for (let i = 1; i <= this.options.history; i++) this.prefixes.push(tokenizer.encode(t.itemPrefix.replace('{i}', String(i))));
    this.titleIds = new Array(titles.length);
    this.answerIds = new Array(titles.length);
  }

  private title(item: number): number[] {
    let ids = this.titleIds[item];
    if (!ids) {
      ids = this.tokenizer.encode(this.titles[item]).slice(0, this.options.titleTokens);
      this.titleIds[item] = ids;
    }
    return ids;
  }

  /** Prompt ids for a history (item indices, oldest first); only the last H items are used. */
  prompt(history: readonly number[]): number[] {
    const h = history.slice(Math.max(0, history.length - this.options.history));
    const out = [...this.instruction];
    h.forEach((item, i) => {
      out.push(...this.prefixes[i], ...this.title(item), ...this.suffix);
    });
    out.push(...this.answerCue);
    return out;
  }

  /** Target ids: a space, the item's title (truncated), then end-of-sequence. */
  answer(item: number): number[] {
    let ids = this.answerIds[item];
    if (!ids) {
      ids = [...this.tokenizer.encode(' ' + this.titles[item]).slice(0, this.options.targetTokens), this.tokenizer.specialIds.eos];
      this.answerIds[item] = ids;
    }
    return ids;
  }

  /** A training example: prompt + answer ids, labels -100 on the prompt (loss on the target only). */
  example(history: readonly number[], item: number): { ids: number[]; labels: number[] } {
    const p = this.prompt(history);
    const a = this.answer(item);
    return { ids: [...p, ...a], labels: [...p.map(() => -100), ...a] };
  }
}
