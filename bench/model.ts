/**
 * A small Llama-style decoder built from the core ops, for the bench only (the real model lives in
 * src/nn). RMSNorm, RoPE, grouped-query causal attention, SwiGLU MLP, untied LM head; optional LoRA
 * adapters (A [r, in], B [out, r], scale alpha/r) on all seven projections with the base frozen.
 */
import { Tensor, Rng, randn, ones, zeros, parameter, rand } from '../src/core/index.js';
import * as op from '../src/core/index.js';

export interface Config {
  vocab: number;
  dModel: number;
  nHeads: number;
  nKvHeads: number;
  ffn: number;
  nLayers: number;
  ropeBase: number;
  eps: number;
}

const PROJ = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

export class TinyLlama {
  readonly params: Record<string, Tensor> = {};
  readonly lora: Record<string, { A: Tensor; B: Tensor }> = {};
  loraScale = 0;

  constructor(readonly cfg: Config, seed = 0) {
    const rng = new Rng(seed);
    const p = (name: string, shape: number[]): Tensor => {
      const t = parameter(randn(shape, { rng, std: 0.02 }), undefined, name);
      this.params[name] = t;
      return t;
    };
    const norm = (name: string): void => {
      this.params[name] = parameter(ones([cfg.dModel]), undefined, name);
    };
    const dh = cfg.dModel / cfg.nHeads;
    p('embed', [cfg.vocab, cfg.dModel]);
    for (let l = 0; l < cfg.nLayers; l++) {
      const n = `layers.${l}.`;
      norm(n + 'input_norm');
      p(n + 'q_proj', [cfg.nHeads * dh, cfg.dModel]);
      p(n + 'k_proj', [cfg.nKvHeads * dh, cfg.dModel]);
      p(n + 'v_proj', [cfg.nKvHeads * dh, cfg.dModel]);
      p(n + 'o_proj', [cfg.dModel, cfg.nHeads * dh]);
      norm(n + 'post_norm');
      p(n + 'gate_proj', [cfg.ffn, cfg.dModel]);
      p(n + 'up_proj', [cfg.ffn, cfg.dModel]);
      p(n + 'down_proj', [cfg.dModel, cfg.ffn]);
    }
    norm('final_norm');
    p('lm_head', [cfg.vocab, cfg.dModel]);
  }

  /** Freeze the base and add LoRA adapters (PEFT init: A uniform, B zero) on every projection. */
  addLora(rank: number, alpha: number, seed = 1): Tensor[] {
    const rng = new Rng(seed);
    for (const t of Object.values(this.params)) t.freeze();
    const out: Tensor[] = [];
    for (let l = 0; l < this.cfg.nLayers; l++) {
      for (const pr of PROJ) {
        const name = `layers.${l}.${pr}`;
        const [o, i] = this.params[name].shape;
        const bound = 1 / Math.sqrt(i);
        const A = parameter(rand([rank, i], { rng, lo: -bound, hi: bound }), undefined, name + '.lora_A');
        const B = parameter(zeros([o, rank]), undefined, name + '.lora_B');
        this.lora[name] = { A, B };
        out.push(A, B);
      }
    }
    this.loraScale = alpha / rank;
    return out;
  }

  trainable(): Tensor[] {
    return [...Object.values(this.params), ...Object.values(this.lora).flatMap((x) => [x.A, x.B])].filter((t) => t.requiresGrad);
  }

  private proj(x: Tensor, name: string): Tensor {
    const ad = this.lora[name];
    if (!ad) return op.linear(x, this.params[name]);
    return op.loraLinear(x, this.params[name], ad.A, ad.B, { scale: this.loraScale });
  }

  /** Mean next-token cross-entropy of ids [B, T] against targets [B, T] (-100 ignored). */
  loss(ids: Int32Array, targets: Int32Array, B: number, T: number): Tensor {
    const c = this.cfg;
    const P = this.params;
    const dh = c.dModel / c.nHeads;
    let x = op.embedding(P.embed, ids, [B, T]);
    for (let l = 0; l < c.nLayers; l++) {
      const n = `layers.${l}.`;
      const h = op.rmsNorm(x, P[n + 'input_norm'], c.eps);
      const q = op.rope(this.proj(h, n + 'q_proj'), { headDim: dh, base: c.ropeBase });
      const k = op.rope(this.proj(h, n + 'k_proj'), { headDim: dh, base: c.ropeBase });
      const v = this.proj(h, n + 'v_proj');
      const a = op.attention(q, k, v, { numHeads: c.nHeads, numKvHeads: c.nKvHeads, causal: true });
      x = op.add(x, this.proj(a, n + 'o_proj'));
      const m = op.rmsNorm(x, P[n + 'post_norm'], c.eps);
      x = op.add(x, this.proj(op.swiglu(this.proj(m, n + 'gate_proj'), this.proj(m, n + 'up_proj')), n + 'down_proj'));
    }
    return op.linearCrossEntropy(op.rmsNorm(x, P.final_norm, c.eps), P.lm_head, targets);
  }
}
