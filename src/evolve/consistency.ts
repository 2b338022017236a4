/**
 * EvoRec's optional consistency term: KL(previous model || current model) of the next-token distribution
 * at the answer position of inactive users' prompts (of their training histories: see consistencySamples),
 * weighted by lambda. It asks the update to leave the
 * model's behaviour on users without new data where it was.
 *
 * The previous model's distributions are computed once, before the update starts (the model is then the
 * previous model); each step uses the next `batch` prompts in a fixed rotation.
 */
import { logSoftmax, mul, noGrad, scale, sub, sum, Tensor } from '../core/index.js';
import type { PeriodSplit, Sample } from '../data/periods.js';
import type { LLMRec } from '../models/llmrec.js';
import { padBatch } from '../nn/batch.js';

/**
 * The samples whose histories make the consistency prompts at period t (at most `count`, in `rand` order):
 * for each inactive user, the last training target, i.e. the one just before the user's held-out
 * (validation, else test) target. Its history ends before the held-out items, so no consistency prompt is
 * a prompt that period t (or a later one, whose held-out targets come later still) scores: building the
 * term on the test prompts would train on the evaluation data. (The target may be an earlier period's
 * held-out one, released since: a training target like any other.) Users with no such target (every
 * interaction with a history held out) are left out.
 */
export function consistencySamples(split: PeriodSplit, t: number, count: number, rand: () => number): Sample[] {
  const out: { s: Sample; k: number }[] = [];
  for (const x of split.periods[t].test) {
    if (x.group !== 'inactive') continue;
    const k = rand(); // one draw per inactive user, whether or not it has a training target
    const { test, valid } = split.heldOut(x.user, t);
    const pos = (valid >= 0 ? valid : test) - 1;
    if (pos < 1) continue;
    const row = split.userRows[x.user][pos];
    out.push({ s: { user: x.user, row, pos, item: split.dataset.items[row], timestamp: split.dataset.timestamps[row] }, k });
  }
  return out.sort((a, b) => a.k - b.k).slice(0, count).map((x) => x.s);
}

export interface ConsistencyOptions {
  lambda: number;
  /** Prompts per step. */
  batch: number;
}

export class ConsistencyTerm {
  private readonly teacher: Float32Array[];

  constructor(
    private readonly model: LLMRec,
    private readonly prompts: number[][],
    readonly options: ConsistencyOptions,
  ) {
    const V = model.decoder.config.vocabSize;
    this.teacher = noGrad(() => {
      const out: Float32Array[] = [];
      for (let s = 0; s < prompts.length; s += 32) {
        const lp = this.lastLogProbs(prompts.slice(s, s + 32), false).data;
        for (let i = 0; i * V < lp.length; i++) out.push(lp.slice(i * V, (i + 1) * V));
      }
      return out;
    });
  }

  private lastLogProbs(prompts: number[][], training: boolean): Tensor {
    const b = padBatch(prompts, { padId: this.model.padId, side: 'left' });
    const out = this.model.decoder.forward(b.ids, { batch: b.batch, attentionMask: b.attentionMask, logits: 'last', training });
    return logSoftmax(out.logits!); // [B, 1, V]
  }

  /** lambda * mean KL over this step's prompts (a differentiable scalar), or null when there are none. */
  loss(step: number): Tensor | null {
    const n = this.prompts.length;
    if (n === 0 || this.options.lambda === 0) return null;
    const k = Math.min(this.options.batch, n);
    const idx = Array.from({ length: k }, (_, i) => (step * k + i) % n);
    const V = this.model.decoder.config.vocabSize;
    const logP = new Float32Array(k * V);
    const P = new Float32Array(k * V);
    idx.forEach((j, i) => {
      logP.set(this.teacher[j], i * V);
      for (let v = 0; v < V; v++) P[i * V + v] = Math.exp(this.teacher[j][v]);
    });
    const logQ = this.lastLogProbs(idx.map((j) => this.prompts[j]), true);
    const kl = sum(mul(new Tensor(P, [k, 1, V]), sub(new Tensor(logP, [k, 1, V]), logQ)));
    return scale(kl, this.options.lambda / k);
  }
}
