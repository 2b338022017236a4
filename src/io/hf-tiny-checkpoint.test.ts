/**
 * A Hugging Face Qwen2 folder as transformers lays it out (src/io/fixtures/qwen2-tiny-hf, written by
 * reference/hf_tiny_checkpoint.py): config.json with Qwen2's fields, BF16 weights in two shards behind
 * model.safetensors.index.json, a hand-written byte-level BPE tokenizer.json whose special tokens live
 * in added_tokens only, Qwen2's tokenizer_config.json (chat_template, pad_token null) and a
 * generation_config.json with a list of eos ids. Loaded through the ordinary loaders, it must give the
 * reference's token ids and float64 logits.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../data/test-utils/tmp.js';
import { loadModelFolder } from '../nn/checkpoint-folder.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { locateCheckpoint, parseGenerationConfig } from './hf-folder.js';

export const QWEN2_TINY_HF = fileURLToPath(new URL('./fixtures/qwen2-tiny-hf/', import.meta.url));
const expected = JSON.parse(readFileSync(fileURLToPath(new URL('./fixtures/qwen2-tiny-hf-expected.json', import.meta.url)), 'utf8')) as {
  vocab_size: number;
  tokenizer_vocab_size: number;
  special: { eos: number; pad: number; im_start: number; im_end: number; generation_eos: number[] };
  encoded: { text: string; ids: number[] }[];
  sequences: { ids: number[]; logits: number[] }[];
};

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

function copyFixture(): string {
  const dir = join(tempDir(), 'qwen2');
  cpSync(QWEN2_TINY_HF, dir, { recursive: true });
  return dir;
}

describe('a Hugging Face Qwen2 folder (sharded BF16, tokenizer.json with added special tokens)', () => {
  it('is located as a sharded checkpoint with its tokenizer and generation config', async () => {
    const f = await locateCheckpoint(QWEN2_TINY_HF);
    assert.equal(f.weights.kind, 'sharded');
    assert.deepEqual(f.weights.kind === 'sharded' && f.weights.shards.map((s) => s.split('/').pop()), ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    assert.ok(f.tokenizer && f.tokenizerConfig && f.generationConfig);
  });

  it('loads and gives the reference logits (float64 forward on the BF16 weights) within 1e-5', async () => {
    const { model, tokenizer, generation } = await loadModelFolder(QWEN2_TINY_HF);
    assert.equal(model.config.modelType, 'qwen2');
    assert.equal(model.config.vocabSize, expected.vocab_size);
    assert.equal(model.config.tieWordEmbeddings, true);
    assert.equal(model.config.torchDtype, 'bfloat16');
    assert.equal(model.config.extra.use_sliding_window, false);
    assert.ok(tokenizer);
    assert.equal(tokenizer.vocabSize, expected.tokenizer_vocab_size); // fewer ids than embedding rows, as Qwen2
    // eos_token from tokenizer_config.json; pad_token null -> eos; bos_token null -> none
    assert.deepEqual(tokenizer.specialIds, { eos: expected.special.eos, pad: expected.special.eos });
    assert.deepEqual(generation?.eosTokenIds, expected.special.generation_eos);
    const V = expected.vocab_size;
    for (const s of expected.sequences) {
      const logits = model.logitsOf([s.ids]);
      assert.deepEqual(logits.shape, [1, s.ids.length, V]);
      const e = relErr(logits.data, s.logits);
      assert.ok(e < 1e-5, `logits of [${s.ids.join(', ')}]: relative error ${e}`);
    }
  });

  it("encodes like the reference (Qwen2's pre-split, special tokens from added_tokens) with both engines, and decodes back", async () => {
    const fast = await loadTokenizer(QWEN2_TINY_HF);
    const hf = await loadTokenizer(QWEN2_TINY_HF, { engine: 'hf' });
    assert.equal(fast.engine, 'fast');
    for (const { text, ids } of expected.encoded) {
      assert.deepEqual(fast.encode(text), ids, text);
      assert.deepEqual(hf.encode(text), ids, text);
      assert.equal(fast.decode(ids), text);
    }
    assert.equal(fast.tokenToId('<|im_start|>'), expected.special.im_start);
    assert.equal(fast.tokenToId('<|im_end|>'), expected.special.im_end);
  });

  it("starts LLMRec prompts with bos only where transformers' tokenizer would (Llama: add_bos_token or a bos-first template)", async () => {
    const { PromptBuilder } = await import('../models/prompt.js');
    const titles = ['red apple', 'blue plum'];
    const plain = await loadTokenizer(QWEN2_TINY_HF);
    assert.equal(plain.addBos, false, "Qwen2's: no bos");
    const first = new PromptBuilder(plain, titles, { history: 2 }).prompt([0, 1]);
    const dir = copyFixture();
    const cfgFile = join(dir, 'tokenizer_config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    // Llama 2 style: add_bos_token true
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, bos_token: '<|im_start|>', add_bos_token: true }));
    const llama2 = await loadTokenizer(dir);
    assert.equal(llama2.addBos, true);
    assert.deepEqual(new PromptBuilder(llama2, titles, { history: 2 }).prompt([0, 1]), [expected.special.im_start, ...first]);
    assert.deepEqual(llama2.encode('red'), plain.encode('red'), 'encode itself adds nothing');
    // Llama 3 style: no add_bos_token, a TemplateProcessing post-processor with bos first
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, bos_token: '<|im_start|>' }));
    const tokFile = join(dir, 'tokenizer.json');
    const tj = JSON.parse(readFileSync(tokFile, 'utf8'));
    const template = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|im_start|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<|im_start|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|im_start|>': { id: '<|im_start|>', ids: [expected.special.im_start], tokens: ['<|im_start|>'] } },
    };
    writeFileSync(tokFile, JSON.stringify({ ...tj, post_processor: { type: 'Sequence', processors: [tj.post_processor, template] } }));
    assert.equal((await loadTokenizer(dir)).addBos, true);
    // add_bos_token false wins over the template (transformers rebuilds the post-processor from it)
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, bos_token: '<|im_start|>', add_bos_token: false }));
    assert.equal((await loadTokenizer(dir)).addBos, false);
  });

  it('errors name the file and field: bad generation_config.json, sliding-window attention, a broken shard index, vocab_size below the tokenizer', async () => {
    const dir = copyFixture();
    const cfgFile = join(dir, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));

    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [expected.special.im_end, 9999] }));
    await assert.rejects(loadModelFolder(dir), /generation_config\.json: field "eos_token_id": token id 9999 is outside the vocabulary/);
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 'x' }));
    await assert.rejects(loadModelFolder(dir), /generation_config\.json: field "eos_token_id"/);
    rmSync(join(dir, 'generation_config.json'));
    assert.equal((await loadModelFolder(dir)).generation, null); // optional
    assert.deepEqual(parseGenerationConfig({ eos_token_id: 5 }).eosTokenIds, [5]);

    writeFileSync(cfgFile, JSON.stringify({ ...cfg, use_sliding_window: true, sliding_window: 64, max_window_layers: 0 }));
    await assert.rejects(loadModelFolder(dir), /config\.json: field "use_sliding_window": sliding-window attention is not supported/);
    // a window no layer uses, or one as long as the context, changes nothing: accepted
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, use_sliding_window: true, sliding_window: 64, max_window_layers: 2 }));
    await loadModelFolder(dir, { tokenizer: false });

    // the sharded layout: a shard listed in weight_map missing, a tensor the index places in the wrong shard
    writeFileSync(cfgFile, JSON.stringify(cfg));
    const indexFile = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8'));
    writeFileSync(indexFile, JSON.stringify({ ...index, weight_map: { ...index.weight_map, 'model.norm.weight': 'model-00001-of-00002.safetensors' } }));
    await assert.rejects(loadModelFolder(dir), /model-00001-of-00002\.safetensors: tensor "model\.norm\.weight": listed in model\.safetensors\.index\.json but missing from the shard/);
    writeFileSync(indexFile, JSON.stringify(index));
    rmSync(join(dir, 'model-00002-of-00002.safetensors'));
    await assert.rejects(loadModelFolder(dir), /model\.safetensors\.index\.json: shard "model-00002-of-00002\.safetensors" listed in weight_map does not exist/);

    // vocab_size below the tokenizer's ids (the embedding shrunk to match, so only the tokenizer check fails)
    const { model } = await loadModelFolder(QWEN2_TINY_HF, { tokenizer: false });
    const { saveModelFolder } = await import('../nn/checkpoint-folder.js');
    const { Decoder } = await import('../nn/decoder.js');
    const small = new Decoder({ ...model.config, vocabSize: 300, bosTokenId: null, eosTokenId: 0 }, { seed: 0 });
    const bad = join(tempDir(), 'small');
    await saveModelFolder(bad, small);
    cpSync(join(QWEN2_TINY_HF, 'tokenizer.json'), join(bad, 'tokenizer.json'));
    cpSync(join(QWEN2_TINY_HF, 'tokenizer_config.json'), join(bad, 'tokenizer_config.json'));
    await assert.rejects(loadModelFolder(bad), /config\.json: field "vocab_size": 300 embedding rows, but .*tokenizer\.json has token ids up to 378/);
  });
});
