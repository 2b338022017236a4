import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { decoderPreset, parseHfConfig, writeHfConfig } from "./hf-config.js";
import {
  checkHfWeights,
  checkLoraWeights,
  expectedHfWeights,
  expectedLoraWeights,
  HF_KEYS,
  isLoraTarget,
  LINEAR_MODULES,
  locateCheckpoint,
  loraRankAndScale,
  makeLoraConfig,
  parseAdapterConfig,
  parseHfWeightKey,
  parsePeftLoraKey,
  peftLoraKey,
  readAdapterConfig,
  readPeftAdapter,
  writePeftAdapter,
} from "./hf-folder.js";
import { readSafetensorsCheckpoint, writeSafetensors, writeSafetensorsCheckpoint } from "./safetensors.js";

let dir = "";
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "evorec-hf-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const tiny = decoderPreset("tiny");

function randomWeights(shapes: { name: string; shape: number[] }[]): Map<string, { shape: number[]; data: Float32Array }> {
  const m = new Map<string, { shape: number[]; data: Float32Array }>();
  let s = 1;
  for (const { name, shape } of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      data[i] = s / 2 ** 31 - 0.5;
    }
    m.set(name, { shape, data });
  }
  return m;
}

describe("HF weight names", () => {
  it("lists every weight of a Qwen2 decoder with HF names and shapes", () => {
    const w = expectedHfWeights(tiny);
    // embed + per layer (2 norms + 7 linears + 3 q/k/v biases) + final norm; tied: no lm_head
    assert.equal(w.length, 1 + tiny.numHiddenLayers * 12 + 1);
    const byName = new Map(w.map((e) => [e.name, e.shape]));
    assert.deepEqual(byName.get("model.embed_tokens.weight"), [1024, 64]);
    assert.deepEqual(byName.get("model.layers.1.input_layernorm.weight"), [64]);
    assert.deepEqual(byName.get("model.layers.0.self_attn.q_proj.weight"), [64, 64]);
    assert.deepEqual(byName.get("model.layers.0.self_attn.k_proj.weight"), [32, 64]);
    assert.deepEqual(byName.get("model.layers.0.self_attn.k_proj.bias"), [32]);
    assert.equal(byName.has("model.layers.0.self_attn.o_proj.bias"), false);
    assert.deepEqual(byName.get("model.layers.0.mlp.gate_proj.weight"), [176, 64]);
    assert.deepEqual(byName.get("model.layers.0.mlp.down_proj.weight"), [64, 176]);
    assert.deepEqual(byName.get("model.layers.1.post_attention_layernorm.weight"), [64]);
    assert.deepEqual(byName.get("model.norm.weight"), [64]);
    assert.equal(byName.has("lm_head.weight"), false);
    const untied = expectedHfWeights({ ...tiny, tieWordEmbeddings: false });
    assert.deepEqual(untied[untied.length - 1], { name: "lm_head.weight", shape: [1024, 64] });
    for (const { name } of untied) assert.ok(parseHfWeightKey(name), name);
    assert.deepEqual(parseHfWeightKey("model.layers.12.mlp.up_proj.weight"), { kind: "linear", layer: 12, module: "up_proj", param: "weight" });
    assert.equal(parseHfWeightKey("model.layers.0.mlp.q_proj.weight"), null);
    assert.equal(parseHfWeightKey("transformer.h.0.attn.c_attn.weight"), null);
    assert.equal(HF_KEYS.linear(3, "o_proj", "bias"), "model.layers.3.self_attn.o_proj.bias");
  });

  it("checkHfWeights names the tensor that is missing, misshapen or unexpected", () => {
    const w = randomWeights(expectedHfWeights(tiny));
    checkHfWeights(tiny, w, "m/model.safetensors");
    const missing = new Map(w);
    missing.delete("model.layers.1.mlp.up_proj.weight");
    assert.throws(() => checkHfWeights(tiny, missing, "m/model.safetensors"), /m\/model\.safetensors: tensor "model\.layers\.1\.mlp\.up_proj\.weight": missing/);
    const bad = new Map(w);
    bad.set("model.norm.weight", { shape: [65], data: new Float32Array(65) });
    assert.throws(() => checkHfWeights(tiny, bad), /tensor "model\.norm\.weight": shape \[65\] does not match config\.json \(expected \[64\]\)/);
    const extra = new Map(w);
    extra.set("model.layers.0.self_attn.o_proj.bias", { shape: [64], data: new Float32Array(64) });
    assert.throws(() => checkHfWeights(tiny, extra), /o_proj\.bias": unexpected tensor/);
    checkHfWeights(tiny, extra, "x", { allowExtra: true });
  });
});

describe("checkpoint folder", () => {
  it("locates config, single or sharded weights and the optional tokenizer files", async () => {
    const ck = path.join(dir, "ck");
    await writeHfConfig(ck, tiny);
    const w = randomWeights(expectedHfWeights(tiny));
    await writeSafetensorsCheckpoint(ck, w);
    let files = await locateCheckpoint(ck);
    assert.equal(files.config, path.join(ck, "config.json"));
    assert.deepEqual(files.weights, { kind: "single", file: path.join(ck, "model.safetensors") });
    assert.equal(files.tokenizer, undefined);
    await writeFile(path.join(ck, "tokenizer.json"), "{}");
    await writeFile(path.join(ck, "tokenizer_config.json"), "{}");
    await writeSafetensorsCheckpoint(ck, w, { maxShardBytes: 100_000 });
    files = await locateCheckpoint(ck);
    assert.equal(files.weights.kind, "sharded");
    if (files.weights.kind === "sharded") {
      assert.equal(files.weights.index, path.join(ck, "model.safetensors.index.json"));
      assert.ok(files.weights.shards.length >= 3);
    }
    assert.equal(files.tokenizer, path.join(ck, "tokenizer.json"));
    assert.equal(files.tokenizerConfig, path.join(ck, "tokenizer_config.json"));
    const back = await readSafetensorsCheckpoint(ck);
    checkHfWeights(tiny, back.tensors, ck);
  });

  it("errors name the missing file", async () => {
    const empty = path.join(dir, "empty");
    await mkdir(empty, { recursive: true });
    await assert.rejects(locateCheckpoint(empty), /empty\/config\.json: missing/);
    await writeHfConfig(empty, tiny);
    await assert.rejects(locateCheckpoint(empty), /empty: no model\.safetensors or model\.safetensors\.index\.json/);
    await writeFile(path.join(empty, "pytorch_model.bin"), "");
    await assert.rejects(locateCheckpoint(empty), /found pytorch_model\.bin: PyTorch \.bin weights are not supported/);
    await assert.rejects(locateCheckpoint(path.join(dir, "nope")), /nope: checkpoint folder does not exist/);
  });
});

describe("PEFT adapters", () => {
  const all7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

  it("writes PEFT's layout and key names, and reads them back", async () => {
    const cfg = makeLoraConfig({ r: 4, lora_alpha: 8, lora_dropout: 0.05, target_modules: all7, base_model_name_or_path: "evorec/tiny" });
    const exp = expectedLoraWeights(tiny, cfg);
    assert.equal(exp.length, tiny.numHiddenLayers * 7 * 2);
    const byName = new Map(exp.map((e) => [e.name, e.shape]));
    assert.deepEqual(byName.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), [4, 64]);
    assert.deepEqual(byName.get("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"), [64, 4]);
    assert.deepEqual(byName.get("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"), [32, 4]);
    assert.deepEqual(byName.get("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"), [4, 176]);
    assert.deepEqual(byName.get("base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight"), [176, 4]);

    const ad = path.join(dir, "adapter");
    const tensors = randomWeights(exp);
    await writePeftAdapter(ad, cfg, tensors, tiny);
    const json = JSON.parse(await readFile(path.join(ad, "adapter_config.json"), "utf8"));
    assert.equal(json.peft_type, "LORA");
    assert.equal(json.task_type, "CAUSAL_LM");
    assert.equal(json.r, 4);
    assert.equal(json.lora_alpha, 8);
    assert.equal(json.lora_dropout, 0.05);
    assert.equal(json.bias, "none");
    assert.equal(json.fan_in_fan_out, false);
    assert.equal(json.layers_to_transform, null);
    assert.equal(json.base_model_name_or_path, "evorec/tiny");
    assert.deepEqual(json.target_modules, all7);
    const { config, tensors: back } = await readPeftAdapter(ad, tiny);
    assert.deepEqual(config, cfg);
    assert.equal(back.size, tensors.size);
    for (const [k, t] of tensors) assert.deepEqual(back.get(k)!.data, t.data);
    assert.equal(loraRankAndScale(cfg, 0, "q_proj").scale, 2);
  });

  it("reads adapter_config.json as PEFT writes it (extra fields, layers_to_transform, regex and all-linear targets, patterns)", async () => {
    const peftJson = {
      alpha_pattern: {},
      auto_mapping: null,
      base_model_name_or_path: "Qwen/Qwen2-0.5B",
      bias: "none",
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      layer_replication: null,
      layers_pattern: null,
      layers_to_transform: [1],
      loftq_config: {},
      lora_alpha: 32,
      lora_dropout: 0.05,
      megatron_config: null,
      megatron_core: "megatron.core",
      modules_to_save: null,
      peft_type: "LORA",
      r: 16,
      rank_pattern: { down_proj: 8 },
      revision: null,
      target_modules: ["v_proj", "q_proj", "down_proj"],
      task_type: "CAUSAL_LM",
      use_dora: false,
      use_rslora: false,
    };
    const f = path.join(dir, "peft", "adapter_config.json");
    await mkdir(path.dirname(f), { recursive: true });
    await writeFile(f, JSON.stringify(peftJson));
    const cfg = await readAdapterConfig(path.dirname(f));
    assert.equal(cfg.megatron_core, "megatron.core");
    assert.deepEqual(cfg.layers_to_transform, [1]);
    assert.equal(isLoraTarget(cfg, 0, "q_proj"), false);
    assert.equal(isLoraTarget(cfg, 1, "q_proj"), true);
    assert.equal(isLoraTarget(cfg, 1, "k_proj"), false);
    assert.deepEqual(loraRankAndScale(cfg, 1, "down_proj"), { r: 8, alpha: 32, scale: 4 });
    assert.deepEqual(
      expectedLoraWeights(tiny, cfg).map((e) => `${e.module}.${e.which}:${e.shape.join("x")}`),
      ["q_proj.A:16x64", "q_proj.B:64x16", "v_proj.A:16x64", "v_proj.B:32x16", "down_proj.A:8x176", "down_proj.B:64x8"],
    );
    const rx = parseAdapterConfig({ ...peftJson, layers_to_transform: null, target_modules: ".*\\.(q_proj|v_proj)" });
    assert.deepEqual(LINEAR_MODULES.filter((m) => isLoraTarget(rx, 0, m)), ["q_proj", "v_proj"]);
    const al = parseAdapterConfig({ ...peftJson, layers_to_transform: 0, target_modules: "all-linear", use_rslora: true });
    assert.deepEqual(al.layers_to_transform, [0]);
    assert.equal(LINEAR_MODULES.filter((m) => isLoraTarget(al, 0, m)).length, 7);
    assert.equal(loraRankAndScale(al, 0, "q_proj").scale, 32 / 4);
  });

  it("parses PEFT keys, including ones carrying the adapter name", () => {
    assert.equal(peftLoraKey(3, "up_proj", "B"), "base_model.model.model.layers.3.mlp.up_proj.lora_B.weight");
    assert.deepEqual(parsePeftLoraKey("base_model.model.model.layers.3.mlp.up_proj.lora_B.weight"), { layer: 3, module: "up_proj", which: "B" });
    assert.deepEqual(parsePeftLoraKey("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"), { layer: 0, module: "q_proj", which: "A" });
    assert.equal(parsePeftLoraKey("base_model.model.model.layers.0.self_attn.up_proj.lora_A.weight"), null);
    assert.equal(parsePeftLoraKey("model.layers.0.self_attn.q_proj.weight"), null);
  });

  it("errors name the file and field / tensor", async () => {
    const base = { peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: ["q_proj"] };
    const f = "a/adapter_config.json";
    const cases: [unknown, RegExp][] = [
      [{ ...base, peft_type: "PREFIX_TUNING" }, /a\/adapter_config\.json: field "peft_type": unsupported peft_type "PREFIX_TUNING"/],
      [{ ...base, r: 0 }, /field "r"/],
      [{ ...base, r: undefined }, /field "r": is required/],
      [{ ...base, target_modules: undefined }, /field "target_modules": is required/],
      [{ ...base, bias: "all" }, /field "bias": only bias "none" is supported/],
      [{ ...base, use_dora: true }, /field "use_dora": DoRA is not supported/],
      [{ ...base, fan_in_fan_out: true }, /field "fan_in_fan_out"/],
      [{ ...base, modules_to_save: ["lm_head"] }, /field "modules_to_save": modules_to_save is not supported/],
      [{ ...base, task_type: "SEQ_CLS" }, /field "task_type"/],
    ];
    for (const [json, re] of cases) assert.throws(() => parseAdapterConfig(json, f), re);

    const cfg = makeLoraConfig({ r: 2, lora_alpha: 4, target_modules: ["q_proj"] });
    const w = randomWeights(expectedLoraWeights(tiny, cfg));
    const extra = new Map(w);
    extra.set(peftLoraKey(0, "k_proj", "A"), { shape: [2, 64], data: new Float32Array(128) });
    assert.throws(() => checkLoraWeights(tiny, cfg, extra, "ad/adapter_model.safetensors"), /ad\/adapter_model\.safetensors: tensor "base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight": not targeted/);
    const bad = new Map(w);
    bad.set(peftLoraKey(1, "q_proj", "B"), { shape: [64, 3], data: new Float32Array(192) });
    assert.throws(() => checkLoraWeights(tiny, cfg, bad), /q_proj\.lora_B\.weight": shape \[64, 3\] does not match \(expected \[64, 2\]\)/);
    await assert.rejects(writePeftAdapter(path.join(dir, "ad2"), cfg, { "model.layers.0.self_attn.q_proj.weight": { shape: [1], data: [0] } }), /not a PEFT LoRA key/);
    const ad = path.join(dir, "ad3");
    await writePeftAdapter(ad, cfg, w);
    await writeSafetensors(path.join(ad, "adapter_model.safetensors"), { "lm_head.weight": { shape: [1], data: [1] } });
    await assert.rejects(readPeftAdapter(ad), /adapter_model\.safetensors: tensor "lm_head\.weight": not a LoRA key/);
    await rm(path.join(ad, "adapter_model.safetensors"));
    await assert.rejects(readPeftAdapter(ad), /adapter_model\.safetensors: missing/);
  });

  it("model configs read from Qwen2-style JSON drive the expected adapter shapes", () => {
    const c = parseHfConfig({ model_type: "qwen2", vocab_size: 100, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 1 });
    const cfg = makeLoraConfig({ r: 2, lora_alpha: 2, target_modules: ["k_proj"] });
    assert.deepEqual(expectedLoraWeights(c, cfg).map((e) => e.shape), [[2, 32], [8, 2]]);
  });
});
