/**
 * Forward-pass cost of the decoder on this machine (docs/backbone.md):
 *
 *   node --import tsx src/nn/forward-bench.ts [presets...] [--qwen2-0.5b]
 *
 * For each preset: inference time per token for a 1 x 128 and a 16 x 128 batch (no gradients), the
 * per-token cost of KV-cache decoding (one token at a time after a 64-token prompt), and one training
 * step (forward + backward + AdamW, 16 x 128). FLOPs per token are 2 x (weights touched per token) +
 * attention. With --qwen2-0.5b a decoder with Qwen2-0.5B's shapes (weights filled with a constant: the
 * time does not depend on the values) is timed too, to check the FLOP extrapolation.
 */
import { noGrad } from '../core/index.js';
import { countParameters, type DecoderConfig, decoderPreset, type DecoderPresetName, expectedHfWeights, parseHfConfig } from '../io/index.js';
import { LmTrainer } from '../train/lm-trainer.js';
import { Decoder } from './decoder.js';

/** Qwen2-0.5B's config.json (structural fields). */
export const QWEN2_0_5B = parseHfConfig({
  architectures: ['Qwen2ForCausalLM'],
  model_type: 'qwen2',
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  max_position_embeddings: 32768,
  rope_theta: 1000000.0,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
});

/** Forward FLOPs per token at context length T (matrix products only: 2 per multiply-add). */
export function forwardFlopsPerToken(c: DecoderConfig, T: number): number {
  const d = c.hiddenSize, q = c.numAttentionHeads * c.headDim, kv = c.numKeyValueHeads * c.headDim;
  const perLayer = d * q * 2 + 2 * d * kv + 3 * d * c.intermediateSize;
  const attn = 2 * c.numAttentionHeads * c.headDim * T; // QK^T and PV, average over causal positions ~ T/2 each
  return 2 * (c.numHiddenLayers * perLayer + d * c.vocabSize) + 2 * c.numHiddenLayers * attn;
}

function time(fn: () => void, reps: number): number {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / reps;
}

function bench(name: string, cfg: DecoderConfig, model: Decoder, opts: { train: boolean; reps: number; batch16?: boolean }): void {
  const ids = (B: number, T: number) => Int32Array.from({ length: B * T }, (_, i) => (i * 7919 + 13) % cfg.vocabSize);
  const T = 128;
  const one = noGrad(() => time(() => model.forward(ids(1, T), { batch: 1, logits: 'last' }), opts.reps));
  const sixteen = opts.batch16 === false ? NaN : noGrad(() => time(() => model.forward(ids(16, T), { batch: 16, logits: 'last' }), Math.max(1, opts.reps >> 2)));
  const decode = noGrad(() => {
    const cache = model.newCache(1);
    model.forward(ids(1, 64), { cache, logits: 'last' });
    const n = 16;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) model.forward([[i + 2]], { cache, logits: 'last' });
    return (performance.now() - t0) / n;
  });
  const flops = forwardFlopsPerToken(cfg, T);
  let train = '';
  if (opts.train) {
    const tr = new LmTrainer(model, { lr: 1e-3, totalSteps: 10 });
    const x = ids(16, T);
    const ms = time(() => tr.trainStep({ ids: x, labels: x, batch: 16, seqLen: T }), 2);
    train = `, train step 16x128 ${ms.toFixed(0)} ms (${Math.round((16 * T * 1000) / ms)} tokens/s)`;
  }
  console.log(
    `${name}: ${(countParameters(cfg) / 1e6).toFixed(2)} M params, ${(flops / 1e6).toFixed(1)} MFLOP/token; ` +
      `forward 1x128 ${(one / T).toFixed(3)} ms/token (${((flops * T) / one / 1e6).toFixed(1)} GFLOP/s), ` +
      (Number.isNaN(sixteen) ? '' : `16x128 ${(sixteen / (16 * T)).toFixed(3)} ms/token (${((flops * 16 * T) / sixteen / 1e6).toFixed(1)} GFLOP/s), `) +
      `KV-cache decode ${decode.toFixed(2)} ms/token${train}`,
  );
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const presets = args.filter((a) => !a.startsWith('--')) as DecoderPresetName[];
  for (const p of presets.length ? presets : (['tiny', 'small', 'deep', 'base'] as DecoderPresetName[])) {
    const cfg = decoderPreset(p);
    bench(p, cfg, new Decoder(cfg, { seed: 1 }), { train: true, reps: 4 });
  }
  if (args.includes('--qwen2-0.5b')) {
    const cfg = QWEN2_0_5B;
    const weights = new Map(expectedHfWeights(cfg).map(({ name, shape }) => [name, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01) }]));
    const model = new Decoder(cfg, { weights });
    model.freezeBase();
    bench('qwen2-0.5b shapes', cfg, model, { train: false, reps: 2, batch16: false });
  }
}

const invoked = process.argv[1] ?? '';
if (/forward-bench\.(ts|js)$/.test(invoked)) void main();
