/**
 * Refuses non-finite weights when a checkpoint is loaded: one NaN or infinity in a weight makes every
 * logit NaN downstream, silently. No trained checkpoint holds one legitimately (a float16 overflow
 * while saving, or a diverged run, does), so the load fails naming the file, the tensor and the index.
 */
import { SafetensorsError } from './safetensors.js';

export function checkFiniteWeights(tensors: ReadonlyMap<string, { data: Float32Array }>, file: string): void {
  for (const [name, t] of tensors) {
    const d = t.data;
    for (let i = 0; i < d.length; i++) {
      const x = d[i];
      // x - x is 0 for every finite x, NaN for NaN and both infinities.
      if (x - x !== 0) {
        const what = Number.isNaN(x) ? 'NaN' : x > 0 ? '+Infinity' : '-Infinity';
        throw new SafetensorsError(file, `${what} at index ${i} (non-finite weights give NaN logits)`, name);
      }
    }
  }
}
