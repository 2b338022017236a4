/**
 * LoRA adapters in PEFT's layout (Hu et al. 2021; Hugging Face PEFT semantics):
 *
 *   y = W x + b + sum over active adapters of  weight * scale * B (A dropout(x)),   scale = alpha / r
 *
 * A [r, in] is initialised Kaiming-uniform like PEFT (bound 1/sqrt(in)), B [out, r] to zero, so a
 * fresh adapter leaves the model unchanged. An adapter holds one (A, B) pair per targeted module
 * (layer x projection) and a trainable mask: whole adapter on/off, and optionally only some layers
 * and/or some projections (EvoRec's "update only the located layers": `setTrainableLayers([2, 5])`).
 * Masked pairs are frozen tensors (requiresGrad false): they get no gradient and an optimiser skips them.
 *
 * Files: `saveAdapter` / `loadAdapter` write and read PEFT folders (adapter_config.json +
 * adapter_model.safetensors, keys `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`).
 */
import { concat, noGrad, parameter, rand, Rng, scale as scaleOp, type Tensor, zeros } from '../core/index.js';
import {
  type DecoderConfig,
  type F32Tensor,
  isLoraTarget,
  LINEAR_MODULES,
  type LinearModule,
  linearShape,
  loraRankAndScale,
  makeLoraConfig,
  type PeftLoraConfig,
  peftLoraKey,
  readPeftAdapter,
  writePeftAdapter,
} from '../io/index.js';

/** Friendly LoRA settings (converted to PEFT's LoraConfig by {@link loraConfig}). */
export interface LoraSettings {
  /** Rank (default 16, as the EvoRec authors). */
  r?: number;
  /** Scale numerator (default 32): scale = alpha / r. */
  alpha?: number;
  /** Dropout on the adapter input while training (default 0.05). */
  dropout?: number;
  /** Projections that get an adapter (default all seven: q, k, v, o, gate, up, down). */
  targetModules?: readonly LinearModule[];
  /** Layers that carry adapters (PEFT layers_to_transform; default all). */
  layers?: readonly number[] | null;
  /** scale = alpha / sqrt(r) (rsLoRA). */
  useRslora?: boolean;
}

export const DEFAULT_LORA: Required<Omit<LoraSettings, 'layers'>> = {
  r: 16,
  alpha: 32,
  dropout: 0.05,
  targetModules: LINEAR_MODULES,
  useRslora: false,
};

/** A PEFT LoraConfig from friendly settings (PEFT defaults for everything else). */
export function loraConfig(s: LoraSettings = {}): PeftLoraConfig {
  const o = { ...DEFAULT_LORA, ...s };
  return makeLoraConfig({
    r: o.r,
    lora_alpha: o.alpha,
    lora_dropout: o.dropout,
    target_modules: [...o.targetModules],
    layers_to_transform: s.layers ? [...s.layers] : null,
    use_rslora: o.useRslora,
  });
}

/** One adapted projection: A [r, in], B [out, r], and its scale. */
export interface LoraPair {
  layer: number;
  module: LinearModule;
  r: number;
  scale: number;
  A: Tensor;
  B: Tensor;
}

const pairKey = (layer: number, m: LinearModule) => `${layer}.${m}`;

export class LoraAdapter {
  /** Adapted modules by `${layer}.${module}`. */
  readonly pairs = new Map<string, LoraPair>();
  /** True while the adapter's product is folded into the base weights (see Decoder.mergeAdapter). */
  merged = false;
  private trainable = true;
  private layerMask: Set<number> | null = null;
  private moduleMask: Set<LinearModule> | null = null;

  constructor(
    readonly name: string,
    readonly config: PeftLoraConfig,
    readonly model: DecoderConfig,
  ) {}

  /** A fresh adapter: A Kaiming-uniform (PEFT: bound 1/sqrt(in)), B zero. */
  static create(name: string, model: DecoderConfig, config: PeftLoraConfig, rng: Rng): LoraAdapter {
    const a = new LoraAdapter(name, config, model);
    for (let l = 0; l < model.numHiddenLayers; l++) {
      for (const m of LINEAR_MODULES) {
        if (!isLoraTarget(config, l, m)) continue;
        const [out, inp] = linearShape(model, m);
        const { r, scale } = loraRankAndScale(config, l, m);
        const bound = 1 / Math.sqrt(inp);
        const A = parameter(rand([r, inp], { lo: -bound, hi: bound, rng }), undefined, peftLoraKey(l, m, 'A'));
        const B = parameter(zeros([out, r]), undefined, peftLoraKey(l, m, 'B'));
        a.pairs.set(pairKey(l, m), { layer: l, module: m, r, scale, A, B });
      }
    }
    return a;
  }

  /** An adapter from PEFT tensors (names and shapes already checked against the configs). */
  static fromTensors(name: string, model: DecoderConfig, config: PeftLoraConfig, tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>): LoraAdapter {
    const a = new LoraAdapter(name, config, model);
    for (let l = 0; l < model.numHiddenLayers; l++) {
      for (const m of LINEAR_MODULES) {
        if (!isLoraTarget(config, l, m)) continue;
        const { r, scale } = loraRankAndScale(config, l, m);
        const ta = tensors.get(peftLoraKey(l, m, 'A'));
        const tb = tensors.get(peftLoraKey(l, m, 'B'));
        if (!ta || !tb) throw new RangeError(`adapter "${name}": missing ${peftLoraKey(l, m, ta ? 'B' : 'A')}`);
        const A = parameter(Float32Array.from(ta.data), ta.shape, peftLoraKey(l, m, 'A'));
        const B = parameter(Float32Array.from(tb.data), tb.shape, peftLoraKey(l, m, 'B'));
        a.pairs.set(pairKey(l, m), { layer: l, module: m, r, scale, A, B });
      }
    }
    return a;
  }

  get(layer: number, m: LinearModule): LoraPair | undefined {
    return this.pairs.get(pairKey(layer, m));
  }

  /** Layers that carry at least one pair. */
  layers(): number[] {
    return [...new Set([...this.pairs.values()].map((p) => p.layer))].sort((x, y) => x - y);
  }

  /** Is this pair trained (adapter trainable, layer and module inside the masks)? */
  isTrainable(layer: number, m: LinearModule): boolean {
    return this.trainable && !this.merged && (this.layerMask === null || this.layerMask.has(layer)) && (this.moduleMask === null || this.moduleMask.has(m));
  }

  /** Train only these layers' pairs (null: every layer). Makes the adapter trainable. */
  setTrainableLayers(layers: Iterable<number> | null): this {
    this.layerMask = layers === null ? null : new Set(layers);
    this.trainable = true;
    return this.apply();
  }

  /** Train only these projections (null: every targeted projection). Makes the adapter trainable. */
  setTrainableModules(modules: Iterable<LinearModule> | null): this {
    this.moduleMask = modules === null ? null : new Set(modules);
    this.trainable = true;
    return this.apply();
  }

  /** The current masks (null = no restriction). */
  trainableMask(): { trainable: boolean; layers: number[] | null; modules: LinearModule[] | null } {
    return {
      trainable: this.trainable,
      layers: this.layerMask ? [...this.layerMask].sort((x, y) => x - y) : null,
      modules: this.moduleMask ? [...this.moduleMask] : null,
    };
  }

  /** Freeze every pair (masks are kept for a later unfreeze). */
  freeze(): this {
    this.trainable = false;
    return this.apply();
  }

  /** Make the adapter trainable again (within its masks). */
  unfreeze(): this {
    this.trainable = true;
    return this.apply();
  }

  private apply(): this {
    for (const p of this.pairs.values()) {
      if (this.isTrainable(p.layer, p.module)) {
        p.A.unfreeze();
        p.B.unfreeze();
      } else {
        p.A.freeze();
        p.B.freeze();
      }
    }
    return this;
  }

  /** (PEFT key, tensor) for every A and B. */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const p of this.pairs.values()) out.push([peftLoraKey(p.layer, p.module, 'A'), p.A], [peftLoraKey(p.layer, p.module, 'B'), p.B]);
    return out;
  }

  /** Trainable tensors (or all with `all`). */
  parameters(all = false): Tensor[] {
    return this.namedParameters()
      .map(([, t]) => t)
      .filter((t) => all || t.requiresGrad);
  }

  /** Number of values (trainable only with `trainableOnly`). */
  numParameters(trainableOnly = false): number {
    return this.parameters(!trainableOnly).reduce((s, t) => s + t.size, 0);
  }

  /** Tensors keyed by PEFT names, for writePeftAdapter. */
  toPeftTensors(): Map<string, F32Tensor> {
    const m = new Map<string, F32Tensor>();
    for (const [k, t] of this.namedParameters()) m.set(k, { dtype: 'F32', shape: t.shape.slice(), data: t.data });
    return m;
  }

  /** Independent copy under a new name (same trainable mask). */
  clone(name: string): LoraAdapter {
    const c = LoraAdapter.fromTensors(name, this.model, this.config, new Map(this.namedParameters().map(([k, t]) => [k, t])));
    c.layerMask = this.layerMask ? new Set(this.layerMask) : null;
    c.moduleMask = this.moduleMask ? new Set(this.moduleMask) : null;
    c.trainable = this.trainable;
    return c.apply();
  }
}

/**
 * One adapter equal to the weighted sum of several (PEFT add_weighted_adapter, combination "cat"):
 * per module A = [A_1; A_2; ...] and B = [w_1 s_1 / s B_1, w_2 s_2 / s B_2, ...] with scale s = 1
 * (alpha = r), so B A x = sum_i w_i s_i B_i A_i x exactly. Ranks add up; modules targeted by only
 * some of the parts get the rank of those (written as PEFT rank_pattern / alpha_pattern).
 */
export function combineLoraAdapters(name: string, parts: readonly { adapter: LoraAdapter; weight: number }[]): LoraAdapter {
  if (parts.length === 0) throw new Error('combineAdapters: no adapters given');
  const model = parts[0].adapter.model;
  const ranks = new Map<string, { layer: number; module: LinearModule; r: number; items: { p: LoraPair; w: number }[] }>();
  for (const { adapter, weight } of parts) {
    if (adapter.model !== model && JSON.stringify(adapter.model) !== JSON.stringify(model)) throw new Error('combineAdapters: adapters belong to different models');
    for (const p of adapter.pairs.values()) {
      const k = pairKey(p.layer, p.module);
      const e = ranks.get(k) ?? { layer: p.layer, module: p.module, r: 0, items: [] };
      e.r += p.r;
      e.items.push({ p, w: weight });
      ranks.set(k, e);
    }
  }
  const rs = [...ranks.values()].map((e) => e.r);
  const counts = new Map<number, number>();
  for (const r of rs) counts.set(r, (counts.get(r) ?? 0) + 1);
  const r0 = [...counts.entries()].sort((a, b) => b[1] - a[1] || b[0] - a[0])[0][0];
  const rankPattern: Record<string, number> = {};
  const alphaPattern: Record<string, number> = {};
  for (const e of ranks.values()) {
    if (e.r !== r0) {
      const full = `model.layers.${e.layer}.${e.module === 'q_proj' || e.module === 'k_proj' || e.module === 'v_proj' || e.module === 'o_proj' ? 'self_attn' : 'mlp'}.${e.module}`;
      rankPattern[full] = e.r;
      alphaPattern[full] = e.r;
    }
  }
  const modules = [...new Set([...ranks.values()].map((e) => e.module))];
  const layers = [...new Set([...ranks.values()].map((e) => e.layer))].sort((x, y) => x - y);
  const allLayers = layers.length === model.numHiddenLayers;
  const first = parts[0].adapter.config;
  const config = makeLoraConfig({
    r: r0,
    lora_alpha: r0,
    lora_dropout: first.lora_dropout,
    target_modules: LINEAR_MODULES.filter((m) => modules.includes(m)),
    layers_to_transform: allLayers ? null : layers,
    rank_pattern: rankPattern,
    alpha_pattern: alphaPattern,
    base_model_name_or_path: first.base_model_name_or_path,
  });
  // Modules of a layer that only some parts target would be missing from the config's layer x
  // module product: check that the product matches what we build.
  const out = new LoraAdapter(name, config, model);
  noGrad(() => {
    for (const e of ranks.values()) {
      const A = concat(e.items.map(({ p }) => p.A.detach()), 0);
      const B = concat(e.items.map(({ p, w }) => scaleOp(p.B.detach(), w * p.scale)), 1);
      out.pairs.set(pairKey(e.layer, e.module), {
        layer: e.layer,
        module: e.module,
        r: e.r,
        scale: 1,
        A: parameter(A.data, A.shape, peftLoraKey(e.layer, e.module, 'A')),
        B: parameter(B.data, B.shape, peftLoraKey(e.layer, e.module, 'B')),
      });
    }
  });
  for (let l = 0; l < model.numHiddenLayers; l++) {
    for (const m of LINEAR_MODULES) {
      if (isLoraTarget(config, l, m) !== out.pairs.has(pairKey(l, m))) {
        throw new Error(`combineAdapters: the parts target different (layer, module) sets that PEFT's config cannot express (layer ${l}, ${m})`);
      }
    }
  }
  return out;
}

/** Write an adapter as a PEFT folder (adapter_config.json + adapter_model.safetensors). */
export async function saveAdapter(dir: string, adapter: LoraAdapter, opts: { baseModel?: string | null } = {}): Promise<void> {
  const cfg: PeftLoraConfig = { ...adapter.config, inference_mode: true };
  if (opts.baseModel !== undefined) cfg.base_model_name_or_path = opts.baseModel;
  await writePeftAdapter(dir, cfg, adapter.toPeftTensors(), adapter.model);
}

/** Read a PEFT adapter folder for a model with this config (names and shapes checked). */
export async function readAdapter(dir: string, model: DecoderConfig, name = 'default'): Promise<LoraAdapter> {
  const { config, tensors } = await readPeftAdapter(dir, model);
  return LoraAdapter.fromTensors(name, model, config, tensors);
}
