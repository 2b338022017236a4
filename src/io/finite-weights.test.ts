import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../data/test-utils/tmp.js';
import { loadAdapter, saveModelAdapter } from '../nn/checkpoint-folder.js';
import { Decoder } from '../nn/decoder.js';
import { checkFiniteWeights } from './finite-weights.js';
import { decoderPreset } from './hf-config.js';

describe('checkFiniteWeights', () => {
  it('names the tensor, the value and the index of the first non-finite weight', () => {
    const ok = new Float32Array([0, -1, 3.4e38]);
    assert.doesNotThrow(() => checkFiniteWeights(new Map([['a', { data: ok }]]), 'm.safetensors'));
    for (const [x, what] of [[NaN, 'NaN'], [Infinity, '+Infinity'], [-Infinity, '-Infinity']] as const) {
      const data = new Float32Array([1, 2, x, 4]);
      assert.throws(() => checkFiniteWeights(new Map([['a', { data: ok }], ['b', { data }]]), 'm.safetensors'), {
        name: 'SafetensorsError',
        message: `m.safetensors: tensor "b": ${what} at index 2 (non-finite weights give NaN logits)`,
      });
    }
  });

  it('refuses a PEFT adapter with a NaN weight when it is loaded', async () => {
    const dir = join(tempDir(), 'adapter');
    const cfg = decoderPreset('tiny', { vocabSize: 50 });
    const m = new Decoder(cfg, { seed: 1 });
    const a = m.addAdapter('default', { r: 2, alpha: 4, dropout: 0 }, { seed: 1 });
    const [name, t] = a.namedParameters()[0];
    t.data[1] = NaN;
    await saveModelAdapter(dir, m);
    await assert.rejects(loadAdapter(dir, new Decoder(cfg, { seed: 1 })), {
      message: `${join(dir, 'adapter_model.safetensors')}: tensor "${name}": NaN at index 1 (non-finite weights give NaN logits)`,
    });
  });
});
