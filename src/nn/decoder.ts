/**
 * A Llama / Qwen2-family decoder-only language model on the compute core (nanoGPT-style, one file).
 *
 *   x = embed(ids)
 *   per layer:  x = x + o_proj(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))   n = rmsnorm(x)
 *               x = x + down_proj(silu(gate_proj(n)) * up_proj(n))                        n = rmsnorm(x)
 *   logits = lm_head(rmsnorm(x))          (lm_head = embed when tie_word_embeddings)
 *
 * Grouped-query causal attention (num_key_value_heads), q/k/v bias (Qwen2, Llama attention_bias), o
 * bias (Llama attention_bias), rotary positions with base rope_theta ("rotate_half" convention, as
 * transformers). Parameters use Hugging Face names (`model.layers.0.self_attn.q_proj.weight`) and are
 * trainable or frozen per tensor; ops over frozen inputs record nothing, so a frozen lower half costs
 * no backward work. LoRA adapters (./lora.ts) hook into the seven projections.
 *
 * Batches may be left- or right-padded: pass `attentionMask` (1 = real, 0 = padding); RoPE positions
 * then count real tokens only (as transformers' generate does), padded keys are masked out, and every
 * layer's output hidden states are available for pooling over real tokens (see {@link meanPool}).
 */
import * as op from '../core/index.js';
import { isGradEnabled, noGrad, parameter, Rng, type Tensor, ones, zeros, randn } from '../core/index.js';
import {
  ConfigError,
  type DecoderConfig,
  countParameters,
  expectedHfWeights,
  hasBias,
  HF_KEYS,
  LINEAR_MODULES,
  type LinearModule,
  linearShape,
  type PeftLoraConfig,
} from '../io/index.js';
import { KVCache } from './kv-cache.js';
import { combineLoraAdapters, LoraAdapter, loraConfig, type LoraSettings } from './lora.js';

export interface DecoderOptions {
  /** Seed of the random initialisation and of LoRA dropout (default 0). */
  seed?: number;
  /** Adopt these arrays as the weights (HF names; shapes already checked), instead of initialising. */
  weights?: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>;
}

/** Token ids: [B][T] rows of equal length, or a flat [B*T] array with `batch` rows. */
export type TokenIds = Int32Array | readonly number[] | readonly (readonly number[])[];

export interface ForwardOptions {
  /** Rows when `ids` is flat (default 1). */
  batch?: number;
  /** [B*T]: 1 = real token, 0 = padding (left or right). Default: all real. */
  attentionMask?: Uint8Array | readonly number[] | null;
  /** Explicit RoPE positions [B*T] (default: count of real tokens before each token, plus the cache's). */
  positions?: Int32Array | null;
  /** Continue from (and append to) this cache. */
  cache?: KVCache | null;
  /** Labels [B*T] in the Hugging Face convention: position t predicts labels[t + 1]; -100 is ignored. */
  labels?: Int32Array | readonly number[] | null;
  /** Which logits to return: every position, only the last one ([B, 1, V]), or none. Default 'all' without labels, 'none' with. */
  logits?: 'all' | 'last' | 'none';
  /** Return every layer's output hidden states. */
  outputHiddenStates?: boolean;
  /** Training mode: LoRA dropout on (default false). */
  training?: boolean;
  /**
   * Skip padded positions in the per-token work when no gradient is recorded (default true; it is
   * never used with labels or logits 'all'). Hidden states at padded positions are then zeros.
   */
  packPadding?: boolean;
}

export interface DecoderOutput {
  /** [B, T, V] ('all') or [B, 1, V] ('last'); null for 'none'. */
  logits: Tensor | null;
  /** Mean cross-entropy over label tokens (null without labels). */
  loss: Tensor | null;
  /** Tokens counted in the loss. */
  lossTokens: number;
  /**
   * With outputHiddenStates: L + 1 tensors [B, T, D]: the embeddings, then the output of every decoder
   * layer (residual stream, before the final norm; transformers' hidden_states[-1] is after the norm).
   */
  hiddenStates: Tensor[] | null;
  /** Final-norm output [B, T, D] (what the LM head reads). */
  lastHiddenState: Tensor;
}

interface LinearParams {
  weight: Tensor;
  bias: Tensor | null;
}

interface LayerParams {
  inputNorm: Tensor;
  postNorm: Tensor;
  linear: Record<LinearModule, LinearParams>;
}

export class Decoder {
  readonly config: DecoderConfig;
  /** Base weights by Hugging Face name (lm_head.weight absent when tied). */
  readonly params: Record<string, Tensor> = {};
  readonly layers: LayerParams[] = [];
  /** LoRA adapters by name. */
  readonly adapters = new Map<string, LoraAdapter>();
  /** Seeded generator for LoRA dropout. */
  readonly rng: Rng;
  private active: { adapter: LoraAdapter; weight: number }[] = [];
  private mergedWeights = new Map<string, number>();

  constructor(config: DecoderConfig, opts: DecoderOptions = {}) {
    this.config = config;
    const rs = config.ropeScaling;
    if (rs && rs.type !== 'default' && rs.rope_type !== 'default') {
      throw new ConfigError('config.json', `rope scaling ${JSON.stringify(rs)} is not supported (only plain RoPE)`, 'rope_scaling');
    }
    const seed = opts.seed ?? 0;
    this.rng = new Rng(seed + 1);
    const init = new Rng(seed);
    const std = config.initializerRange;
    for (const { name, shape } of expectedHfWeights(config)) {
      const given = opts.weights?.get(name);
      let t: Tensor;
      if (opts.weights) {
        if (!given) throw new Error(`weights: "${name}" is missing`);
        t = parameter(given.data, shape, name);
      } else if (shape.length === 1) {
        t = parameter(/norm/.test(name) ? ones(shape) : zeros(shape), undefined, name);
      } else {
        t = parameter(randn(shape, { std, rng: init }), undefined, name);
      }
      this.params[name] = t;
    }
    for (let l = 0; l < config.numHiddenLayers; l++) {
      const linear = {} as Record<LinearModule, LinearParams>;
      for (const m of LINEAR_MODULES) {
        linear[m] = { weight: this.params[HF_KEYS.linear(l, m)], bias: hasBias(config, m) ? this.params[HF_KEYS.linear(l, m, 'bias')] : null };
      }
      this.layers.push({ inputNorm: this.params[HF_KEYS.inputLayernorm(l)], postNorm: this.params[HF_KEYS.postAttentionLayernorm(l)], linear });
    }
  }

  get numLayers(): number {
    return this.config.numHiddenLayers;
  }

  /** The LM head matrix [V, D] (the embedding when tied). */
  get headWeight(): Tensor {
    return this.params[this.config.tieWordEmbeddings ? HF_KEYS.embedTokens : HF_KEYS.lmHead];
  }

  // ------------------------------------------------------------------------------------------
  // Parameters

  /** Base weights (HF names) then adapter matrices (`lora.<adapter>.<PEFT key>`). */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = Object.entries(this.params);
    for (const a of this.adapters.values()) for (const [k, t] of a.namedParameters()) out.push([`lora.${a.name}.${k}`, t]);
    return out;
  }

  /** Tensors that currently receive gradients (base and adapters). */
  trainableParameters(): Tensor[] {
    return this.namedParameters()
      .map(([, t]) => t)
      .filter((t) => t.requiresGrad);
  }

  /** Base parameter count (tied head counted once). */
  numParameters(): number {
    return countParameters(this.config);
  }

  /** Freeze (false) or unfreeze (true) base weights, all or those whose HF name passes `filter`. */
  setBaseTrainable(trainable: boolean, filter: (name: string) => boolean = () => true): this {
    for (const [name, t] of Object.entries(this.params)) if (filter(name)) (trainable ? t.unfreeze() : t.freeze());
    return this;
  }

  freezeBase(): this {
    return this.setBaseTrainable(false);
  }

  // ------------------------------------------------------------------------------------------
  // LoRA

  /**
   * Add a fresh adapter (A Kaiming-uniform, B zero). As PEFT's get_peft_model, the base is frozen
   * (unless `freezeBase: false`); the first adapter added becomes the active one.
   */
  addAdapter(name: string, settings: LoraSettings | PeftLoraConfig = {}, opts: { seed?: number; freezeBase?: boolean } = {}): LoraAdapter {
    const cfg = 'peft_type' in settings ? (settings as PeftLoraConfig) : loraConfig(settings as LoraSettings);
    return this.attachAdapter(LoraAdapter.create(name, this.config, cfg, new Rng(opts.seed ?? 0)), opts);
  }

  /** Attach an existing adapter (e.g. read from a PEFT folder). */
  attachAdapter(adapter: LoraAdapter, opts: { freezeBase?: boolean } = {}): LoraAdapter {
    if (this.adapters.has(adapter.name)) throw new Error(`adapter "${adapter.name}" already exists`);
    if (JSON.stringify(adapter.model) !== JSON.stringify(this.config)) {
      for (const p of adapter.pairs.values()) {
        const [o, i] = linearShape(this.config, p.module);
        if (p.A.shape[1] !== i || p.B.shape[0] !== o || p.layer >= this.numLayers) throw new Error(`adapter "${adapter.name}" does not fit this model (${p.layer}.${p.module})`);
      }
    }
    this.adapters.set(adapter.name, adapter);
    if (opts.freezeBase !== false) this.freezeBase();
    if (this.active.length === 0) this.active = [{ adapter, weight: 1 }];
    return adapter;
  }

  adapter(name: string): LoraAdapter {
    const a = this.adapters.get(name);
    if (!a) throw new Error(`no adapter "${name}" (have: ${[...this.adapters.keys()].join(', ') || 'none'})`);
    return a;
  }

  deleteAdapter(name: string): void {
    const a = this.adapter(name);
    if (a.merged) this.unmergeAdapter(name);
    this.adapters.delete(name);
    this.active = this.active.filter((x) => x.adapter !== a);
  }

  /**
   * Which adapters the forward uses: a name, names (weight 1 each), `{long: 0.7, short: 0.3}`
   * (outputs summed with these weights), or null / [] for the bare base model.
   */
  setActiveAdapters(sel: string | readonly string[] | Readonly<Record<string, number>> | null): this {
    if (sel === null) this.active = [];
    else if (typeof sel === 'string') this.active = [{ adapter: this.adapter(sel), weight: 1 }];
    else if (Array.isArray(sel)) this.active = (sel as string[]).map((n) => ({ adapter: this.adapter(n), weight: 1 }));
    else this.active = Object.entries(sel as Record<string, number>).map(([n, w]) => ({ adapter: this.adapter(n), weight: w }));
    return this;
  }

  activeAdapters(): { name: string; weight: number }[] {
    return this.active.map((x) => ({ name: x.adapter.name, weight: x.weight }));
  }

  /**
   * A new adapter `name` equal to the weighted sum of existing ones (exact: ranks are concatenated,
   * see combineLoraAdapters), e.g. LSAT's `combineAdapters({long: 0.7, short: 0.3})`. It is attached
   * (frozen) but not activated.
   */
  combineAdapters(weights: Readonly<Record<string, number>>, name = 'combined'): LoraAdapter {
    const parts = Object.entries(weights).map(([n, w]) => ({ adapter: this.adapter(n), weight: w }));
    const c = combineLoraAdapters(name, parts).freeze();
    return this.attachAdapter(c, { freezeBase: false });
  }

  /** Train only these layers' LoRA (null: all) on the named adapter, or on every active adapter. */
  setTrainableLayers(layers: Iterable<number> | null, adapterName?: string): this {
    const list = adapterName ? [this.adapter(adapterName)] : this.active.map((x) => x.adapter);
    const ls = layers === null ? null : [...layers];
    for (const l of ls ?? []) if (!Number.isInteger(l) || l < 0 || l >= this.numLayers) throw new RangeError(`layer ${l} out of range [0, ${this.numLayers})`);
    for (const a of list) a.setTrainableLayers(ls);
    return this;
  }

  /** Fold `weight * scale * B A` into the base weights; the forward then skips the adapter. */
  mergeAdapter(name: string, weight = 1): void {
    const a = this.adapter(name);
    if (a.merged) throw new Error(`adapter "${name}" is already merged`);
    this.foldAdapter(a, weight);
    a.merged = true;
    this.mergedWeights.set(name, weight);
    a.freeze();
  }

  /** Subtract a merged adapter from the base weights again (exact up to float rounding). */
  unmergeAdapter(name: string): void {
    const a = this.adapter(name);
    if (!a.merged) throw new Error(`adapter "${name}" is not merged`);
    this.foldAdapter(a, -(this.mergedWeights.get(name) ?? 1));
    a.merged = false;
    this.mergedWeights.delete(name);
  }

  private foldAdapter(a: LoraAdapter, weight: number): void {
    noGrad(() => {
      for (const p of a.pairs.values()) {
        const W = this.layers[p.layer].linear[p.module].weight;
        const BA = op.matmul(p.B.detach(), p.A.detach());
        const s = weight * p.scale;
        const w = W.data, d = BA.data;
        for (let i = 0; i < w.length; i++) w[i] += s * d[i];
      }
    });
  }

  // ------------------------------------------------------------------------------------------
  // Forward

  /** A cache for `batch` rows (see KVCache). */
  newCache(batch = 1): KVCache {
    return new KVCache(batch, this.numLayers, this.config.numKeyValueHeads * this.config.headDim);
  }

  forward(ids: TokenIds, opts: ForwardOptions = {}): DecoderOutput {
    const c = this.config;
    const { flat, B, T } = flattenIds(ids, opts.batch);
    const cache = opts.cache ?? null;
    if (cache && cache.batch !== B) throw new Error(`forward: cache has ${cache.batch} rows, input ${B}`);
    const mask = opts.attentionMask ? Uint8Array.from(opts.attentionMask) : null;
    if (mask && mask.length !== B * T) throw new Error(`forward: attentionMask has ${mask.length} entries, expected ${B * T}`);
    const S = cache ? cache.length : 0;

    // RoPE positions: real tokens are numbered from the cache's next position; padding repeats it.
    let positions = opts.positions ?? null;
    const realCount = new Int32Array(B);
    if (positions) {
      if (positions.length !== B * T) throw new Error(`forward: positions has ${positions.length} entries, expected ${B * T}`);
    } else if (mask || cache) {
      positions = new Int32Array(B * T);
      for (let b = 0; b < B; b++) {
        let p = cache ? cache.nextPos[b] : 0;
        for (let t = 0; t < T; t++) {
          positions[b * T + t] = p;
          if (!mask || mask[b * T + t]) p++;
        }
      }
    }
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) if (!mask || mask[b * T + t]) realCount[b]++;

    // Key padding mask over [cached ; new] positions (null when nothing is padded).
    let keyMask: Uint8Array | null = null;
    const anyPad = (mask && mask.some((m) => !m)) || (cache && cache.keyMask.some((m) => !m));
    const fullMask = new Uint8Array(B * (S + T)).fill(1);
    if (cache || mask) {
      for (let b = 0; b < B; b++) {
        if (cache && S > 0) fullMask.set(cache.keyMask.subarray(b * S, (b + 1) * S), b * (S + T));
        if (mask) fullMask.set(mask.subarray(b * T, (b + 1) * T), b * (S + T) + S);
      }
    }
    if (anyPad) keyMask = fullMask;

    const training = opts.training ?? false;
    const labels = opts.labels ? Int32Array.from(opts.labels) : null;
    const mode = opts.logits ?? (labels ? 'none' : 'all');
    if (labels && labels.length !== B * T) throw new Error(`forward: labels has ${labels.length} entries, expected ${B * T}`);

    // Packing: without gradients, padded positions are dropped from every per-token op (embedding,
    // norms, projections, RoPE, MLP); only attention sees the padded [B, T] layout. Padding costs nothing
    // then (LLMRec's right-padded candidate answers are half padding). Outputs at padded positions are
    // zeros in this mode, so it is off where they could be read: labels, logits 'all', 'last' on a pad.
    let N = 0;
    for (let b = 0; b < B; b++) N += realCount[b];
    let pack = !!mask && N < B * T && opts.packPadding !== false && !isGradEnabled() && !labels && mode !== 'all';
    if (pack && mode === 'last') for (let b = 0; b < B; b++) if (!mask![b * T + T - 1]) pack = false;
    let realIdx: Int32Array | null = null; // packed row -> b*T + t
    let padIdx: Int32Array | null = null; // b*T + t -> packed row or -1
    if (pack) {
      realIdx = new Int32Array(N);
      padIdx = new Int32Array(B * T).fill(-1);
      for (let i = 0, n = 0; i < B * T; i++) if (mask![i]) { realIdx[n] = i; padIdx[i] = n++; }
    }
    const toPadded = (t: Tensor): Tensor => (padIdx ? op.embedding(op.reshape(t, [N, t.dim(-1)]), padIdx, [B, T]) : t);
    const toPacked = (t: Tensor): Tensor => (realIdx ? op.embedding(op.reshape(t, [B * T, t.dim(-1)]), realIdx, [1, N]) : t);

    let x = realIdx
      ? op.embedding(this.params[HF_KEYS.embedTokens], Int32Array.from(realIdx, (i) => flat[i]), [1, N])
      : op.embedding(this.params[HF_KEYS.embedTokens], flat, [B, T]);
    const hidden: Tensor[] | null = opts.outputHiddenStates ? [toPadded(x)] : null;
    // Without recording (and without hidden states to hand out), the residual stream and the MLP
    // activation are updated in place: fewer fresh arrays to page-fault and collect.
    const inPlace = !isGradEnabled() && !hidden;
    const residual = (r: Tensor, y: Tensor): Tensor => {
      if (!inPlace) return op.add(r, y);
      op.getKernels().axpy(r.size, 1, y.data, r.data);
      return r;
    };
    const headDim = c.headDim;
    const ropePos = positions && realIdx ? Int32Array.from(realIdx, (i) => positions![i]) : positions;
    const ropeOpts = { headDim, base: c.ropeTheta, ...(ropePos ? { positions: ropePos } : {}) };
    for (let l = 0; l < c.numHiddenLayers; l++) {
      const p = this.layers[l];
      const h = op.rmsNorm(x, p.inputNorm, c.rmsNormEps);
      const q = toPadded(op.rope(this.proj(l, 'q_proj', h, training), ropeOpts));
      let k = toPadded(op.rope(this.proj(l, 'k_proj', h, training), ropeOpts));
      let v = toPadded(this.proj(l, 'v_proj', h, training));
      let prefix: op.AttentionPrefix | null = null;
      if (cache) ({ k, v, prefix } = cache.extendShared(l, k, v));
      const a = toPacked(op.attention(q, k, v, { numHeads: c.numAttentionHeads, numKvHeads: c.numKeyValueHeads, causal: true, keyMask, prefix, queryMask: pack ? mask : null }));
      x = residual(x, this.proj(l, 'o_proj', a, training));
      const n = op.rmsNorm(x, p.postNorm, c.rmsNormEps);
      const gate = this.proj(l, 'gate_proj', n, training), up = this.proj(l, 'up_proj', n, training);
      let f: Tensor;
      if (inPlace) {
        // silu(gate) * up written over gate (elementwise, so aliasing is safe): one activation less
        op.getKernels().swiglu(gate.data, up.data, gate.data, gate.size);
        f = gate;
      } else f = op.swiglu(gate, up);
      x = residual(x, this.proj(l, 'down_proj', f, training));
      hidden?.push(toPadded(x));
    }
    if (cache) {
      cache.length = S + T;
      cache.keyMask = fullMask;
      for (let b = 0; b < B; b++) {
        if (opts.positions) {
          let mx = cache.nextPos[b] - 1;
          for (let t = 0; t < T; t++) if (!mask || mask[b * T + t]) mx = Math.max(mx, opts.positions[b * T + t]);
          cache.nextPos[b] = mx + 1;
        } else cache.nextPos[b] += realCount[b];
      }
    }
    const normedRows = op.rmsNorm(x, this.params[HF_KEYS.norm], c.rmsNormEps);
    const normed = toPadded(normedRows);

    let logits: Tensor | null = null;
    let loss: Tensor | null = null;
    let lossTokens = 0;
    if (mode === 'all') logits = op.linear(normed, this.headWeight);
    else if (mode === 'last') {
      const last = realIdx
        ? op.embedding(op.reshape(normedRows, [N, c.hiddenSize]), Int32Array.from({ length: B }, (_, b) => padIdx![b * T + T - 1]), [B, 1])
        : T === 1 ? normed : op.slice(normed, 1, T - 1, T);
      logits = op.linear(last, this.headWeight);
    }
    if (labels) {
      const targets = shiftLabels(labels, B, T);
      for (let i = 0; i < targets.length; i++) if (targets[i] !== -100) lossTokens++;
      if (mode === 'all' && logits) loss = op.crossEntropy(logits, targets);
      else if (lossTokens > 0 && lossTokens < 0.9 * B * T) {
        // The LM head only where a target is predicted (LLMRec: the answer, a tenth of the tokens).
        const idx = new Int32Array(lossTokens);
        for (let i = 0, n = 0; i < targets.length; i++) if (targets[i] !== -100) idx[n++] = i;
        const rows = op.embedding(op.reshape(normed, [B * T, c.hiddenSize]), idx);
        loss = op.linearCrossEntropy(rows, this.headWeight, Int32Array.from(idx, (i) => targets[i]));
      } else loss = op.linearCrossEntropy(normed, this.headWeight, targets);
    }
    return { logits, loss, lossTokens, hiddenStates: hidden, lastHiddenState: normed };
  }

  private foldCache: Map<string, Tensor> | null = null;

  /**
   * Run `fn` (inference over weights that `fn` does not change, e.g. a batch of scoring calls) with
   * each projection's LoRA adapter folded into its weight once (W + s B A, the same product the
   * forward computes per call without dropout), instead of once per forward. Nested calls share it.
   */
  withFrozenWeights<T>(fn: () => T): T {
    if (this.foldCache) return fn();
    this.foldCache = new Map();
    try {
      return fn();
    } finally {
      this.foldCache = null;
    }
  }

  /** One projection: base linear plus every active, unmerged adapter that targets it. */
  private proj(l: number, m: LinearModule, x: Tensor, training: boolean): Tensor {
    const { weight: W, bias } = this.layers[l].linear[m];
    if (this.foldCache && !isGradEnabled()) {
      // one active adapter on this projection: its folded weight, computed once per scope
      const on = this.active.filter(({ adapter }) => !adapter.merged && adapter.get(l, m));
      if (on.length === 1 && !(training && on[0].adapter.config.lora_dropout > 0)) {
        const { adapter, weight } = on[0];
        const key = `${l}.${m}.${adapter.name}.${weight}`;
        let Wf = this.foldCache.get(key);
        if (!Wf) {
          const p = adapter.get(l, m)!;
          const data = W.data.slice(); // plain memory: it outlives arena scopes inside fn
          op.getKernels().gemm(false, false, W.shape[0], W.shape[1], p.A.shape[0], p.scale * weight, p.B.data, 0, p.A.shape[0], 0, p.A.data, 0, W.shape[1], 0, 1, data, 0, W.shape[1], 0, 1);
          Wf = new op.Tensor(data, W.shape);
          this.foldCache.set(key, Wf);
        }
        return op.linear(x, Wf, bias);
      }
    }
    let y: Tensor | null = null;
    for (const { adapter, weight } of this.active) {
      if (adapter.merged) continue;
      const p = adapter.get(l, m);
      if (!p) continue;
      const drop = training ? adapter.config.lora_dropout : 0;
      if (y === null) {
        y = op.loraLinear(x, W, p.A, p.B, { scale: p.scale * weight, bias, dropout: drop, rng: this.rng, training });
      } else {
        const xa = drop > 0 ? op.dropout(x, drop, { rng: this.rng }) : x;
        y = op.add(y, op.scale(op.linear(op.linear(xa, p.A), p.B), p.scale * weight));
      }
    }
    return y ?? op.linear(x, W, bias);
  }

  /** Logits of the last position of each row under noGrad (convenience for inspection). */
  logitsOf(ids: TokenIds, opts: Omit<ForwardOptions, 'labels' | 'logits'> = {}): Tensor {
    return noGrad(() => this.forward(ids, { ...opts, logits: 'all' }).logits!);
  }

  /** Is gradient recording on and anything trainable (for callers that want to skip work)? */
  get recordsGradients(): boolean {
    return isGradEnabled() && this.trainableParameters().length > 0;
  }
}

/** HF causal-LM shift: targets[b, t] = labels[b, t + 1], -100 at the last position. */
export function shiftLabels(labels: Int32Array, B: number, T: number): Int32Array {
  const out = new Int32Array(B * T).fill(-100);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) out[b * T + t] = labels[b * T + t + 1];
  return out;
}

function flattenIds(ids: TokenIds, batch?: number): { flat: Int32Array; B: number; T: number } {
  if (ids.length > 0 && Array.isArray(ids[0])) {
    const rows = ids as readonly (readonly number[])[];
    const T = rows[0].length;
    for (const r of rows) if (r.length !== T) throw new Error('forward: rows of ids must have equal length (pad them and pass attentionMask)');
    const flat = new Int32Array(rows.length * T);
    rows.forEach((r, b) => flat.set(r, b * T));
    return { flat, B: rows.length, T };
  }
  const flat = ids instanceof Int32Array ? ids : Int32Array.from(ids as readonly number[]);
  const B = batch ?? 1;
  if (flat.length % B !== 0 || flat.length === 0) throw new Error(`forward: ${flat.length} ids do not split into ${B} rows`);
  return { flat, B, T: flat.length / B };
}

/**
 * Mean of hidden states [B, T, D] over real tokens (mask [B*T], 1 = real; null = all) -> [B * D].
 * EvoRec's Locate step compares these per layer between the old and the updated history.
 */
export function meanPool(h: Tensor, mask: Uint8Array | readonly number[] | null): Float32Array {
  const [B, T, D] = h.shape;
  const out = new Float32Array(B * D);
  const acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    acc.fill(0);
    let n = 0;
    for (let t = 0; t < T; t++) {
      if (mask && !mask[b * T + t]) continue;
      n++;
      const o = (b * T + t) * D;
      for (let d = 0; d < D; d++) acc[d] += h.data[o + d];
    }
    for (let d = 0; d < D; d++) out[b * D + d] = n > 0 ? acc[d] / n : 0;
  }
  return out;
}
