import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, it, before, after } from "node:test";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { parse } from "csv-parse/sync";
import {
  BYTE_LEVEL_ALPHABET,
  BYTE_TO_UNICODE,
  BpeEncoder,
  type BpeModel,
  bpeModelToTokenizerJson,
  bpeModelToTokenizerConfig,
  fromByteLevel,
  HfTokenizer,
  loadTokenizer,
  preSplit,
  QWEN2_PATTERN,
  GPT2_PATTERN,
  toByteLevel,
  trainBpe,
  trainTokenizer,
} from "./index.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function readTitles(rel: string): string[] {
  const rows = parse(gunzipSync(readFileSync(path.join(ROOT, rel))), { columns: true }) as Record<string, string>[];
  return rows.map((r) => {
    assert.equal(typeof r.title, "string", `${rel}: missing title column`);
    return r.title;
  });
}

const ADVERSARIAL = [
  "",
  " ",
  "  leading and trailing  ",
  "tabs\tand\nnewlines\r\nand\r\rcarriage",
  "non\u00a0breaking\u2003em\u3000ideographic",
  "bom\ufeffnel\u0085ls\u2028ps\u2029",
  "It's I'M we'LL they'Re you'VE he'D 'T",
  "12345 1,000.50 (1995) 3.5oz 10-pack #1",
  "Café Crème — naïve déjà vu",
  "e\u0301 combining vs \u00e9 precomposed",
  "日本語のタイトル 中文标题 한국어",
  "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
  "math ∑∫√ and symbols ©®™ §¶",
  "Ελληνικά кириллица עברית العربية",
  "punct!!! ??? ... --- ___ *** ((()))",
  "lone \ud800 surrogate",
  "special <|endoftext|> inside <|pad|>text<|endoftext|>",
  "<|endoftext|>",
  "   \n\n   \t ",
];

describe("byte-level map", () => {
  it("matches GPT-2 bytes_to_unicode", () => {
    assert.equal(BYTE_TO_UNICODE[0x20], "Ġ");
    assert.equal(BYTE_TO_UNICODE[0x0a], "Ċ");
    assert.equal(BYTE_TO_UNICODE[0x41], "A");
    assert.equal(BYTE_TO_UNICODE[0x00], "Ā");
    assert.equal(BYTE_TO_UNICODE[0xad], "Ń");
    assert.equal(new Set(BYTE_TO_UNICODE).size, 256);
    assert.equal(BYTE_LEVEL_ALPHABET.length, 256);
  });

  it("toByteLevel equals UTF-8 bytes mapped one by one, and fromByteLevel inverts it", () => {
    const enc = new TextEncoder();
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const samples = [...ADVERSARIAL];
    for (let i = 0; i < 3000; i++) {
      let s = "";
      const n = Math.floor(rnd() * 8);
      for (let j = 0; j < n; j++) {
        const kind = rnd();
        if (kind < 0.4) s += String.fromCharCode(32 + Math.floor(rnd() * 95));
        else if (kind < 0.6) s += String.fromCharCode(Math.floor(rnd() * 0x800));
        else if (kind < 0.8) s += String.fromCharCode(Math.floor(rnd() * 0x10000));
        else s += String.fromCodePoint(0x10000 + Math.floor(rnd() * 0x10000));
      }
      samples.push(s);
    }
    for (const s of samples) {
      const ref = Array.from(enc.encode(s), (b) => BYTE_TO_UNICODE[b]).join("");
      assert.equal(toByteLevel(s), ref, JSON.stringify(s));
      assert.equal(fromByteLevel(ref), new TextDecoder().decode(enc.encode(s)));
    }
  });
});

describe("pre-split", () => {
  it("splits like Qwen2 and is lossless", () => {
    assert.deepEqual(preSplit("Toy Story (1995)", QWEN2_PATTERN), ["Toy", " Story", " (", "1", "9", "9", "5", ")"]);
    assert.deepEqual(preSplit("It's 3.5oz!", QWEN2_PATTERN), ["It", "'s", " ", "3", ".", "5", "oz", "!"]);
    assert.deepEqual(preSplit("Toy Story (1995)", GPT2_PATTERN), ["Toy", " Story", " (", "1995", ")"]);
    for (const s of ADVERSARIAL) {
      assert.equal(preSplit(s, QWEN2_PATTERN).join(""), s);
      assert.equal(preSplit(s, GPT2_PATTERN).join(""), s);
    }
  });
});

/** Naive trainer: recount all pairs before every merge (same tie-breaking). */
function naiveMerges(model0: BpeModel, corpus: string[], nMerges: number, minFrequency: number): [string, string][] {
  const ids = new Map<string, number>();
  const vocab = [...model0.vocab.slice(0, model0.specialTokens.length + 256)];
  vocab.forEach((t, i) => ids.set(t, i));
  const words: { syms: number[]; c: number }[] = [];
  const counts = new Map<string, number>();
  for (const text of corpus) for (const w of preSplit(text, model0.pattern)) {
    const bl = toByteLevel(w);
    counts.set(bl, (counts.get(bl) ?? 0) + 1);
  }
  for (const [bl, c] of counts) words.push({ syms: Array.from(bl, (ch) => ids.get(ch)!), c });
  const merges: [string, string][] = [];
  while (merges.length < nMerges) {
    const pc = new Map<string, number>();
    for (const { syms, c } of words) for (let i = 0; i + 1 < syms.length; i++) {
      const k = syms[i] + "," + syms[i + 1];
      pc.set(k, (pc.get(k) ?? 0) + c);
    }
    let best: [number, number] | null = null;
    let bestC = 0;
    for (const [k, c] of pc) {
      const [a, b] = k.split(",").map(Number);
      if (c > bestC || (c === bestC && best && (a < best[0] || (a === best[0] && b < best[1])))) {
        best = [a, b];
        bestC = c;
      }
    }
    if (!best || bestC < minFrequency) break;
    const z = vocab.length;
    vocab.push(vocab[best[0]] + vocab[best[1]]);
    merges.push([vocab[best[0]], vocab[best[1]]]);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.syms.length; ) {
        if (i + 1 < w.syms.length && w.syms[i] === best[0] && w.syms[i + 1] === best[1]) {
          out.push(z);
          i += 2;
        } else out.push(w.syms[i++]);
      }
      w.syms = out;
    }
  }
  return merges;
}

describe("BPE trainer", () => {
  it("learns the hand-checked merges of a tiny corpus", () => {
    // words: "abab" x2, "abc" x1 -> pairs (a,b)=5, (b,a)=2, (b,c)=1
    const corpus = ["abab", "abab", "abc"];
    const { model } = trainBpe(corpus, { vocabSize: 300, pattern: "gpt2" });
    assert.deepEqual(model.merges, [
      ["a", "b"],
      ["ab", "ab"],
    ]); // (ab,c) occurs once < minFrequency 2
    assert.deepEqual(model.specialTokens, [
      { id: 0, content: "<|endoftext|>" },
      { id: 1, content: "<|pad|>" },
    ]);
    assert.equal(model.vocab.length, 2 + 256 + 2);
    assert.equal(model.vocab[258], "ab");
    assert.equal(model.vocab[259], "abab");
    const enc = BpeEncoder.fromModel(model);
    const a = model.vocab.indexOf("a");
    const c = model.vocab.indexOf("c");
    const G = model.vocab.indexOf("Ġ");
    assert.deepEqual(enc.encode("abab abc"), [259, G, 258, c]);
    assert.deepEqual(enc.encode("aba"), [258, a]);

    const m1 = trainBpe(corpus, { vocabSize: 300, pattern: "gpt2", minFrequency: 1 }).model;
    assert.deepEqual(m1.merges, [
      ["a", "b"],
      ["ab", "ab"],
      ["ab", "c"],
    ]);
    assert.deepEqual(BpeEncoder.fromModel(m1).encode("abab abc"), [259, G, 260]);

    // Ties go to the smallest (left id, right id); the vocab size cap is honoured.
    const t = trainBpe(["zw xy"], { vocabSize: 2 + 256 + 1, pattern: "gpt2", minFrequency: 1 }).model;
    assert.deepEqual(t.merges, [["x", "y"]]);
    // Qwen2 pattern: the space attaches to the letter run.
    const q = trainBpe(["a b a b a b"], { vocabSize: 259, minFrequency: 1, specialTokens: [], eosToken: "<e>", padToken: "<e>" }).model;
    assert.deepEqual(q.specialTokens, [{ id: 0, content: "<e>" }]);
    assert.deepEqual(q.merges, [["Ġ", "b"], ["Ġ", "a"]]);
  });

  it("incremental pair counts give exactly the merges of a full recount", () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const syll = ["ba", "na", "an", "ab", "ra", "ca", "da", "bra", "aa", "é", "1", " ", "  ", "'s", "-"];
    const corpus: string[] = [];
    for (let i = 0; i < 400; i++) {
      let s = "";
      const n = 1 + Math.floor(rnd() * 12);
      for (let j = 0; j < n; j++) s += syll[Math.floor(rnd() * syll.length)];
      corpus.push(s);
    }
    for (const minFrequency of [1, 2]) {
      const { model } = trainBpe(corpus, { vocabSize: 2 + 256 + 150, minFrequency });
      assert.ok(model.merges.length > 30);
      assert.deepEqual(model.merges, naiveMerges(model, corpus, 150, minFrequency));
    }
  });

  it("never learns merges across or inside special tokens", () => {
    const corpus = Array.from({ length: 50 }, () => "ab<|endoftext|>ab<|pad|>");
    const { model } = trainBpe(corpus, { vocabSize: 2 + 256 + 20, pattern: "gpt2" });
    assert.deepEqual(model.merges, [["a", "b"]]);
  });

  it("trains an 8k vocabulary on all catalogue titles in seconds (incremental counts)", () => {
    const titles = [
      ...readTitles("data/amazon-beauty-2014-5core/items.csv.gz"),
      ...readTitles("data/movielens-latest-small/items.csv.gz"),
    ];
    const { model, stats } = trainBpe(titles, { vocabSize: 8000 });
    assert.equal(model.vocab.length, 8000);
    assert.equal(new Set(model.vocab).size, 8000);
    // ~1.3 s on the 2-core dev machine; a recount-every-merge trainer takes minutes.
    assert.ok(stats.seconds < 30, `${stats.seconds} s`);
  });

  it("rejects bad options", () => {
    assert.throws(() => trainBpe([], { vocabSize: 100 }), /vocabSize/);
    assert.throws(() => trainBpe([], { vocabSize: 300, specialTokens: ["<a>", "<a>"] }), /duplicate/);
  });
});

describe("tokenizer on the embedded catalogue titles", () => {
  const titles = [
    ...readTitles("data/amazon-beauty-2014-5core/items.csv.gz"),
    ...readTitles("data/movielens-latest-small/items.csv.gz"),
  ];
  let dir = "";
  let model: BpeModel;
  let trained: HfTokenizer;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "evorec-tok-"));
    model = trainBpe(titles, { vocabSize: 4000 }).model;
    trained = HfTokenizer.fromJson(bpeModelToTokenizerJson(model), bpeModelToTokenizerConfig(model), "<trained>");
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("has the datasets' titles", () => {
    assert.ok(titles.length > 20000, `only ${titles.length} titles`);
  });

  it("round-trips every title losslessly (fast engine and @huggingface/tokenizers engine agree)", () => {
    assert.equal(trained.engine, "fast");
    const hf = HfTokenizer.fromJson(trained.json, trained.config, "<trained>", { engine: "hf" });
    assert.equal(hf.engine, "hf");
    const ref = BpeEncoder.fromModel(model);
    let tokens = 0;
    for (const t of titles) {
      const ids = trained.encode(t);
      tokens += ids.length;
      assert.deepEqual(hf.encode(t), ids, `engines disagree on ${JSON.stringify(t)}`);
      assert.deepEqual(ref.encode(t), ids, `reference encoder disagrees on ${JSON.stringify(t)}`);
      assert.equal(trained.decode(ids), t);
      for (const id of ids) assert.ok(id >= 0 && id < trained.vocabSize);
    }
    // Compression sanity: a 4k vocab gives well over 2.5 bytes per token on titles (digits stay single).
    const bytes = titles.reduce((a, t) => a + Buffer.byteLength(t), 0);
    assert.ok(tokens * 2.5 < bytes, `${tokens} tokens for ${bytes} bytes`);
  });

  it("agrees with @huggingface/tokenizers and round-trips on adversarial text", () => {
    const hf = HfTokenizer.fromJson(trained.json, trained.config, "<trained>", { engine: "hf" });
    for (const s of ADVERSARIAL) {
      const ids = trained.encode(s);
      assert.deepEqual(hf.encode(s), ids, JSON.stringify(s));
      const expect = s.replace(/[\ud800-\udfff]/g, (c, i: number) => {
        const code = c.charCodeAt(0);
        const next = s.charCodeAt(i + 1);
        const prev = s.charCodeAt(i - 1);
        const paired = code <= 0xdbff ? next >= 0xdc00 && next <= 0xdfff : prev >= 0xd800 && prev <= 0xdbff;
        return paired ? c : "\ufffd";
      });
      assert.equal(hf.decode(ids), expect, JSON.stringify(s));
    }
  });

  it("special tokens encode to their reserved ids and can be skipped when decoding", () => {
    const { eos, pad, bos } = trained.specialIds;
    assert.equal(eos, 0);
    assert.equal(pad, 1);
    assert.equal(bos, undefined);
    const ids = trained.encode("Lipstick<|endoftext|><|pad|>");
    assert.deepEqual(ids.slice(-2), [eos, pad]);
    assert.equal(trained.decode(ids), "Lipstick<|endoftext|><|pad|>");
    assert.equal(trained.decode(ids, { skipSpecialTokens: true }), "Lipstick");
    assert.equal(trained.decode([]), "");
  });

  it("saved and loaded through the external-loader path gives identical ids", async () => {
    await trained.save(dir);
    const json = JSON.parse(await readFile(path.join(dir, "tokenizer.json"), "utf8"));
    assert.equal(json.model.type, "BPE");
    assert.equal(json.decoder.type, "ByteLevel");
    assert.equal(json.pre_tokenizer.pretokenizers[1].type, "ByteLevel");
    assert.equal(json.pre_tokenizer.pretokenizers[0].pattern.Regex, QWEN2_PATTERN.oniguruma);
    assert.deepEqual(
      json.added_tokens.map((t: { id: number; content: string; special: boolean }) => [t.id, t.content, t.special]),
      [
        [0, "<|endoftext|>", true],
        [1, "<|pad|>", true],
      ],
    );
    const cfg = JSON.parse(await readFile(path.join(dir, "tokenizer_config.json"), "utf8"));
    assert.equal(cfg.eos_token, "<|endoftext|>");
    assert.equal(cfg.pad_token, "<|pad|>");

    for (const loaded of [await loadTokenizer(dir), HfTokenizer.loadSync(path.join(dir, "tokenizer.json")), await loadTokenizer(dir, { engine: "hf" })]) {
      assert.equal(loaded.vocabSize, trained.vocabSize);
      assert.deepEqual(loaded.specialIds, trained.specialIds);
      for (const t of titles) assert.deepEqual(loaded.encode(t), trained.encode(t));
    }
  });

  it("trainTokenizer returns a tokenizer loaded from its tokenizer.json", () => {
    const { tokenizer, stats } = trainTokenizer(titles.slice(0, 2000), { vocabSize: 600, bosToken: "<|bos|>" });
    assert.equal(tokenizer.vocabSize, 600);
    assert.equal(stats.merges, 600 - 3 - 256);
    assert.deepEqual(tokenizer.specialIds, { eos: 0, pad: 1, bos: 2 });
    assert.equal(tokenizer.decode(tokenizer.encode(titles[5])), titles[5]);
  });
});

describe("external tokenizer.json", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "evorec-tokext-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A GPT-2-shaped tokenizer.json written by hand (ByteLevel pre-tokenizer with its own regex, array merges). */
  function gpt2Like(): Record<string, unknown> {
    const vocab: Record<string, number> = {};
    BYTE_LEVEL_ALPHABET.forEach((ch, i) => (vocab[ch] = i));
    vocab["Ġt"] = 256;
    vocab["he"] = 257;
    vocab["Ġthe"] = 258;
    vocab["</s>"] = 259;
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: [{ id: 259, content: "</s>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
      normalizer: null,
      pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: "",
        end_of_word_suffix: "",
        fuse_unk: false,
        byte_fallback: false,
        vocab,
        merges: [
          ["Ġ", "t"],
          ["h", "e"],
          ["Ġt", "he"],
        ],
      },
    };
  }

  it("loads a hand-written GPT-2-style tokenizer.json from disk; both engines agree", async () => {
    const file = path.join(dir, "tokenizer.json");
    await writeFile(file, JSON.stringify(gpt2Like()));
    const tok = await loadTokenizer(file);
    assert.equal(tok.engine, "fast");
    const hf = await loadTokenizer(dir, { engine: "hf" });
    const t = tok.idToToken.bind(tok);
    assert.deepEqual(tok.encode("in the theatre</s>").map(t), ["i", "n", "Ġthe", "Ġthe", "a", "t", "r", "e", "</s>"]);
    for (const s of [...ADVERSARIAL, "the the  the\tthe"]) assert.deepEqual(hf.encode(s.replace(/[\ufeff\u0085]/g, "")), tok.encode(s.replace(/[\ufeff\u0085]/g, "")), s);
    assert.deepEqual(tok.specialIds, { eos: 259, pad: 259 });
    assert.equal(tok.vocabSize, 260);
    assert.equal(tok.decode(tok.encode("the theatre")), "the theatre");
  });

  it("falls back to @huggingface/tokenizers for shapes the fast encoder does not cover", () => {
    const j = gpt2Like();
    j.normalizer = { type: "Lowercase" };
    const tok = HfTokenizer.fromJson(j, {}, "x/tokenizer.json");
    assert.equal(tok.engine, "hf");
    assert.deepEqual(tok.encode("THE").map((i) => tok.idToToken(i)), ["t", "he"]);
  });

  it("names the file in errors", async () => {
    const bad = path.join(dir, "bad", "tokenizer.json");
    await writeFile(path.join(dir, "tokenizer.json"), "{not json");
    await assert.rejects(loadTokenizer(dir), /tokenizer\.json: invalid JSON/);
    assert.throws(() => HfTokenizer.fromJson({ version: "1.0" }, {}, "m/tokenizer.json"), /m\/tokenizer\.json.*"model"/);
    const noEos = gpt2Like();
    noEos.added_tokens = [];
    delete (noEos.model as { vocab: Record<string, number> }).vocab["</s>"];
    assert.throws(() => HfTokenizer.fromJson(noEos, {}, "m/tokenizer.json"), /m\/tokenizer\.json: no end-of-sequence token/);
    assert.throws(() => HfTokenizer.fromJson(gpt2Like(), { eos_token: "<nope>" }, "m/tokenizer.json"), /<nope>/);
    await assert.rejects(loadTokenizer(bad), /bad\/tokenizer\.json/);
  });
});
