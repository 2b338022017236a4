/** The bench configuration (shared with bench/torch_step.py through --config JSON). */
export const BENCH = {
  batch: 16,
  seq: 64,
  loraRank: 8,
  model: { vocab: 8000, dModel: 128, nHeads: 4, nKvHeads: 4, ffn: 512, nLayers: 2, ropeBase: 10000, eps: 1e-6 },
};
