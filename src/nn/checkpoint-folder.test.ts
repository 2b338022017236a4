import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { noGrad } from '../core/index.js';
import { decoderPreset, readSafetensors, writeSafetensors } from '../io/index.js';
import { Decoder } from './decoder.js';
import { loadModelFolder, saveModelFolder } from './checkpoint-folder.js';

const dir = mkdtempSync(join(tmpdir(), 'evorec-folder-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const ids = [[3, 9, 27, 81, 4]];
const logits = (m: Decoder) => noGrad(() => m.forward(ids).logits!.data);

describe('HF checkpoint folders', () => {
  it('sharded save/load gives identical logits; F16 storage loads within half precision', async () => {
    const m = new Decoder(decoderPreset('tiny', { vocabSize: 200 }), { seed: 21 });
    await saveModelFolder(join(dir, 'sharded'), m, { maxShardBytes: 60_000 });
    const index = JSON.parse(readFileSync(join(dir, 'sharded', 'model.safetensors.index.json'), 'utf8'));
    const shards = new Set(Object.values(index.weight_map) as string[]);
    assert.ok(shards.size > 1);
    for (const s of shards) assert.ok(existsSync(join(dir, 'sharded', s)), s);
    assert.ok(!existsSync(join(dir, 'sharded', 'model.safetensors')));
    const { model: m2 } = await loadModelFolder(join(dir, 'sharded'));
    assert.deepEqual(logits(m2), logits(m));

    await saveModelFolder(join(dir, 'f16'), m, { dtype: 'F16' });
    const cfg = JSON.parse(readFileSync(join(dir, 'f16', 'config.json'), 'utf8'));
    assert.equal(cfg.torch_dtype, 'float16');
    assert.equal(cfg.model_type, 'qwen2');
    assert.deepEqual(cfg.architectures, ['Qwen2ForCausalLM']);
    const { model: m3 } = await loadModelFolder(join(dir, 'f16'));
    const a = logits(m), b = logits(m3);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 2e-2);
  });

  it('tied model: a redundant lm_head.weight is accepted and ignored', async () => {
    const m = new Decoder(decoderPreset('tiny', { vocabSize: 200 }), { seed: 22 });
    await saveModelFolder(join(dir, 'tied'), m);
    const file = join(dir, 'tied', 'model.safetensors');
    const { tensors } = await readSafetensors(file);
    tensors.set('lm_head.weight', { dtype: 'F32', shape: [200, 64], data: new Float32Array(200 * 64) });
    await writeSafetensors(file, tensors);
    const { model } = await loadModelFolder(join(dir, 'tied'));
    assert.deepEqual(logits(model), logits(m));
  });

  it('shape mismatch and bad config are errors naming the file and the tensor / field', async () => {
    const m = new Decoder(decoderPreset('tiny', { vocabSize: 200 }), { seed: 23 });
    await saveModelFolder(join(dir, 'bad'), m);
    const cfgFile = join(dir, 'bad', 'config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, intermediate_size: 100 }));
    await assert.rejects(loadModelFolder(join(dir, 'bad')), /model\.safetensors.*model\.layers\.0\.mlp\.gate_proj\.weight.*shape \[176, 64\].*expected \[100, 64\]/);
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, rope_scaling: { type: 'linear', factor: 2 } }));
    await assert.rejects(loadModelFolder(join(dir, 'bad')), /rope_scaling/);
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, hidden_act: 'gelu' }));
    await assert.rejects(loadModelFolder(join(dir, 'bad')), /config\.json: field "hidden_act"/);
  });

  it('config.json sizes are checked against the limits and the safetensors header before anything is allocated', async () => {
    const m = new Decoder(decoderPreset('tiny', { vocabSize: 200 }), { seed: 24 });
    await saveModelFolder(join(dir, 'huge'), m);
    const cfgFile = join(dir, 'huge', 'config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    const refused = async (patch: Record<string, unknown>, message: RegExp) => {
      writeFileSync(cfgFile, JSON.stringify({ ...cfg, ...patch }));
      const heap = process.memoryUsage().heapUsed;
      const t0 = performance.now();
      await assert.rejects(loadModelFolder(join(dir, 'huge')), (e: Error) => {
        assert.match(e.message, message);
        return true;
      });
      assert.ok(performance.now() - t0 < 2000, `refused in ${(performance.now() - t0).toFixed(0)} ms`);
      assert.ok(process.memoryUsage().heapUsed - heap < 64 * 2 ** 20, 'no allocation the size of the claimed model');
    };
    // The review's case: one million layers ran the process out of memory (inspect: 47 s, 4.7 GB).
    await refused({ num_hidden_layers: 1_000_000 }, new RegExp(`${cfgFile.replace(/[.]/g, '\\.')}: field "num_hidden_layers": 1000000 is above evorec's limit of 1024`));
    // Within the limits, but not what the weights hold: the header says so before any tensor is read.
    await refused({ num_hidden_layers: 1000 }, /config\.json: field "num_hidden_layers": 1000 layers, but .*model\.safetensors holds weights of 2/);
    await refused({ hidden_size: 16384, num_attention_heads: 256, intermediate_size: 53248 }, /model\.safetensors: tensor "model\.embed_tokens\.weight": shape \[200, 64\] does not match config\.json \(expected \[200, 16384\]\)/);
    await refused({ vocab_size: 1 << 20 }, /model\.safetensors: tensor "model\.embed_tokens\.weight": shape \[200, 64\] does not match config\.json \(expected \[1048576, 64\]\)/);
  });
});
