import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  ConfigError,
  countParameters,
  DECODER_PRESETS,
  decoderPreset,
  parseHfConfig,
  readHfConfig,
  toHfConfigJson,
  writeHfConfig,
} from "./hf-config.js";

/** Qwen2-0.5B's config.json (as published). */
const QWEN2_05B = {
  architectures: ["Qwen2ForCausalLM"],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: "silu",
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 131072,
  max_window_layers: 24,
  model_type: "qwen2",
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 131072,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  transformers_version: "4.40.1",
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

/** TinyLlama-1.1B's config.json. */
const TINYLLAMA = {
  architectures: ["LlamaForCausalLM"],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: "silu",
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 5632,
  max_position_embeddings: 2048,
  model_type: "llama",
  num_attention_heads: 32,
  num_hidden_layers: 22,
  num_key_value_heads: 4,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  transformers_version: "4.35.0",
  use_cache: true,
  vocab_size: 32000,
};

let dir = "";
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "evorec-cfg-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("hf config.json", () => {
  it("reads Qwen2-0.5B's config", () => {
    const c = parseHfConfig(QWEN2_05B);
    assert.equal(c.modelType, "qwen2");
    assert.equal(c.headDim, 64);
    assert.equal(c.numKeyValueHeads, 2);
    assert.equal(c.qkvBias, true);
    assert.equal(c.oBias, false);
    assert.equal(c.tieWordEmbeddings, true);
    assert.equal(c.ropeTheta, 1e6);
    assert.equal(c.eosTokenId, 151643);
    assert.equal(c.torchDtype, "bfloat16");
    assert.deepEqual(Object.keys(c.extra).sort(), ["attention_dropout", "max_window_layers", "sliding_window", "transformers_version", "use_cache", "use_sliding_window"]);
    // 494M parameters (Qwen2-0.5B's published count)
    assert.equal(Math.round(countParameters(c) / 1e6), 494);
  });

  it("reads TinyLlama's config and Llama 3.1-style eos lists", () => {
    const c = parseHfConfig(TINYLLAMA);
    assert.equal(c.modelType, "llama");
    assert.equal(c.headDim, 64);
    assert.equal(c.qkvBias, false);
    assert.equal(c.oBias, false);
    assert.equal(c.bosTokenId, 1);
    assert.equal(c.rmsNormEps, 1e-5);
    assert.equal(c.extra.pretraining_tp, 1);
    assert.equal(Math.round(countParameters(c) / 1e6), 1100);
    const l3 = parseHfConfig({ ...TINYLLAMA, vocab_size: 128256, eos_token_id: [128001, 128008, 128009], attention_bias: true, head_dim: 128 });
    assert.deepEqual(l3.eosTokenId, [128001, 128008, 128009]);
    assert.equal(l3.headDim, 128);
    assert.equal(l3.qkvBias && l3.oBias, true);
  });

  it("round-trips through config.json, preserving unknown fields", async () => {
    for (const src of [QWEN2_05B, TINYLLAMA]) {
      const c = parseHfConfig(src);
      const d = path.join(dir, c.modelType);
      await writeHfConfig(d, c);
      const back = await readHfConfig(d);
      assert.deepEqual(back, c);
      const json = JSON.parse(await readFile(path.join(d, "config.json"), "utf8"));
      for (const [k, v] of Object.entries(src)) assert.deepEqual(json[k], v, k);
    }
  });

  it("applies the documented defaults", () => {
    const c = parseHfConfig({ model_type: "qwen2", vocab_size: 100, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4 });
    assert.equal(c.numKeyValueHeads, 4);
    assert.equal(c.maxPositionEmbeddings, 32768);
    assert.equal(c.rmsNormEps, 1e-6);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.tieWordEmbeddings, false);
    assert.equal(c.torchDtype, "float32");
    assert.equal(c.bosTokenId, null);
    assert.equal(c.eosTokenId, null);
    const l = parseHfConfig({ model_type: "llama", vocab_size: 100, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4 });
    assert.equal(l.maxPositionEmbeddings, 2048);
    assert.equal(l.qkvBias, false);
    const json = toHfConfigJson(l);
    assert.deepEqual(json.architectures, ["LlamaForCausalLM"]);
    assert.equal(json.attention_bias, false);
    assert.equal(json.hidden_act, "silu");
  });

  it("errors name the file and the field", async () => {
    const f = "ck/config.json";
    const cases: [unknown, RegExp][] = [
      [{ ...QWEN2_05B, hidden_size: undefined }, /ck\/config\.json: field "hidden_size": is required/],
      [{ ...QWEN2_05B, hidden_size: "896" }, /field "hidden_size": .*expected number/],
      [{ ...QWEN2_05B, num_hidden_layers: 0 }, /field "num_hidden_layers"/],
      [{ ...QWEN2_05B, model_type: "gpt2" }, /field "model_type": unsupported model type "gpt2"/],
      [{ ...QWEN2_05B, hidden_act: "gelu" }, /field "hidden_act": only "silu"/],
      [{ ...QWEN2_05B, num_key_value_heads: 3 }, /field "num_key_value_heads": 3 must divide num_attention_heads \(14\)/],
      [{ ...QWEN2_05B, num_attention_heads: 5 }, /field "num_attention_heads": hidden_size 896 is not divisible/],
      [{ ...QWEN2_05B, eos_token_id: 200000 }, /field "eos_token_id": token id 200000 outside the vocabulary/],
      [{ ...QWEN2_05B, architectures: ["LlamaForCausalLM"] }, /field "architectures": expected Qwen2ForCausalLM/],
      [{ ...QWEN2_05B, attention_bias: false }, /field "attention_bias"/],
      [{ ...QWEN2_05B, torch_dtype: "int8" }, /field "torch_dtype"/],
      [[1, 2], /ck\/config\.json: must be a JSON object/],
      [{ ...QWEN2_05B, model_type: "root:x:0:0:root:/root:/bin/bash\n".repeat(100) }, /field "model_type": unsupported model type "root:x[^]{0,40}\.\.\. \(3302 characters\) \(supported/],
      // Sizes above the documented limits (DECODER_LIMITS), refused before anything is allocated.
      [{ ...QWEN2_05B, num_hidden_layers: 1_000_000 }, /ck\/config\.json: field "num_hidden_layers": 1000000 is above evorec's limit of 1024/],
      [{ ...QWEN2_05B, vocab_size: 1e9 }, /field "vocab_size": 1000000000 is above evorec's limit of 1048576/],
      [{ ...QWEN2_05B, hidden_size: 14 * 2 ** 20 }, /field "hidden_size": 14680064 is above evorec's limit of 32768/],
      [{ ...QWEN2_05B, intermediate_size: 2 ** 30 }, /field "intermediate_size": 1073741824 is above evorec's limit/],
      [{ ...QWEN2_05B, num_attention_heads: 896 * 4, head_dim: 64, num_key_value_heads: 2 }, /field "num_attention_heads": 3584 is above evorec's limit of 1024/],
      [{ ...QWEN2_05B, head_dim: 1 << 20 }, /field "head_dim": 1048576 is above evorec's limit of 4096/],
      [{ ...QWEN2_05B, max_position_embeddings: 2 ** 40 }, /field "max_position_embeddings": 1099511627776 is above evorec's limit of 16777216/],
    ];
    for (const [json, re] of cases) {
      assert.throws(() => parseHfConfig(json, f), (e: Error) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.match(e.message, re);
        return true;
      });
    }
    const bad = path.join(dir, "bad");
    await writeFile(path.join(dir, "broken.json"), "{");
    await assert.rejects(readHfConfig(path.join(dir, "broken.json")), /broken\.json: invalid JSON/);
    await assert.rejects(readHfConfig(bad), /bad: cannot read/);
  });
});

describe("decoder presets", () => {
  it("are valid Qwen2 configs of the documented sizes", () => {
    const sizes = Object.fromEntries(Object.entries(DECODER_PRESETS).map(([k, c]) => [k, countParameters(c)]));
    assert.ok(sizes.tiny < 300_000, String(sizes.tiny));
    assert.ok(sizes.small > 2e6 && sizes.small < 5e6, String(sizes.small));
    assert.ok(sizes.base > 5e6 && sizes.base < 10e6, String(sizes.base));
    for (const [name, c] of Object.entries(DECODER_PRESETS)) {
      assert.deepEqual(parseHfConfig(toHfConfigJson(c)), c, name);
      assert.equal(c.numAttentionHeads % c.numKeyValueHeads, 0);
    }
    const s = DECODER_PRESETS.small;
    assert.ok(s.hiddenSize >= 128 && s.hiddenSize <= 192 && s.numHiddenLayers === 4 && s.numAttentionHeads === 4 && s.numKeyValueHeads === 2);
    assert.ok(Math.abs(s.intermediateSize / s.hiddenSize - 2.7) < 0.1);
    assert.equal(s.vocabSize, 8000);
  });

  it("take overrides and re-validate", () => {
    const c = decoderPreset("small", { vocabSize: 5000, eosTokenId: 0, padTokenId: 1 });
    assert.equal(c.vocabSize, 5000);
    assert.equal(decoderPreset("tiny", { hiddenSize: 96 }).headDim, 24);
    const l = decoderPreset("tiny", { modelType: "llama" });
    assert.equal(l.qkvBias, false);
    assert.throws(() => decoderPreset("tiny", { numKeyValueHeads: 3 }), /num_key_value_heads/);
    assert.throws(() => decoderPreset("tiny", { vocabSize: 1, eosTokenId: 0, padTokenId: 1 }), /pad_token_id/);
  });
});
