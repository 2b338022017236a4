import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { noGrad } from '../core/index.js';
import { decoderPreset, HF_KEYS, readSafetensors, writeSafetensors } from '../io/index.js';
import { Decoder } from '../nn/decoder.js';
import { loadModelFolder, saveModelFolder } from '../nn/checkpoint-folder.js';
import { trainTokenizer } from '../tokenizer/index.js';

const run = promisify(execFile);
const cli = ['--import', 'tsx', join(import.meta.dirname, 'main.ts')];
const dir = mkdtempSync(join(tmpdir(), 'evorec-inspect-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function close(a: number[][], b: Float32Array, V: number): void {
  for (let t = 0; t < a.length; t++) {
    assert.equal(a[t].length, V);
    for (let i = 0; i < V; i++) assert.ok(Math.abs(a[t][i] - b[t * V + i]) <= 1e-6 * Math.max(1, Math.abs(b[t * V + i])), `position ${t}, id ${i}`);
  }
}

describe('evorec inspect', () => {
  it('--tokens --json prints the logits of every position (folder without tokenizer, untied llama)', async () => {
    const m = new Decoder(decoderPreset('tiny', { vocabSize: 120, modelType: 'llama', tieWordEmbeddings: false }), { seed: 11 });
    await saveModelFolder(join(dir, 'llama'), m);
    const { stdout } = await run('node', [...cli, 'inspect', '--model', join(dir, 'llama'), '--tokens', '1,2,3', '--json']);
    const out = JSON.parse(stdout) as { logits: number[][] };
    assert.equal(out.logits.length, 3);
    close(out.logits, noGrad(() => m.forward([[1, 2, 3]]).logits!.data), 120);
  });

  it('--text encodes with the folder tokenizer.json', async () => {
    const tok = trainTokenizer(['Lip gloss, pink', 'Lip balm, cherry', 'Hair shampoo'], { vocabSize: 280 }).tokenizer;
    const m = new Decoder(decoderPreset('tiny', { vocabSize: 300 }), { seed: 12 });
    await saveModelFolder(join(dir, 'qwen'), m, { tokenizer: tok });
    const { stdout } = await run('node', [...cli, 'inspect', '--model', join(dir, 'qwen'), '--text', 'Lip balm', '--json']);
    const out = JSON.parse(stdout) as { tokens: number[]; logits: number[][] };
    assert.deepEqual(out.tokens, tok.encode('Lip balm'));
    close(out.logits, noGrad(() => m.forward([out.tokens]).logits!.data), 300);
    const plain = await run('node', [...cli, 'inspect', '--model', join(dir, 'qwen'), '--text', 'Lip balm', '--top', '3']);
    assert.match(plain.stdout, /next-token top 3/);
  });

  it('reads the shipped deep backbone (8 layers, BF16): its logits equal the library forward of the same folder', async () => {
    const folder = join(import.meta.dirname, '..', '..', 'data', 'backbone-deep');
    const { model, tokenizer } = await loadModelFolder(folder);
    assert.equal(model.config.numHiddenLayers, 8);
    const { stdout } = await run('node', [...cli, 'inspect', '--model', folder, '--text', 'Argan Oil Shampoo', '--json']);
    const out = JSON.parse(stdout) as { tokens: number[]; logits: number[][] };
    assert.deepEqual(out.tokens, tokenizer!.encode('Argan Oil Shampoo'));
    close(out.logits, noGrad(() => model.forward([out.tokens]).logits!.data), model.config.vocabSize);
  });

  it('a missing weight is one error line naming the file and tensor', async () => {
    const m = new Decoder(decoderPreset('tiny', { vocabSize: 120 }), { seed: 13 });
    await saveModelFolder(join(dir, 'broken'), m);
    const file = join(dir, 'broken', 'model.safetensors');
    const { tensors } = await readSafetensors(file);
    tensors.delete(HF_KEYS.norm);
    await writeSafetensors(file, tensors);
    await assert.rejects(run('node', [...cli, 'inspect', '--model', join(dir, 'broken'), '--tokens', '1']), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /^evorec: .*model\.safetensors.*model\.norm\.weight.*missing/);
      assert.equal(e.stderr.trim().split('\n').length, 1);
      return true;
    });
  });
});
