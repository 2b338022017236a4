/**
 * One tokenizer interface for every tokenizer.json: ours (trained by {@link trainTokenizer}) and
 * external ones (e.g. a Qwen2 or Llama checkpoint's). Both are loaded through
 * `@huggingface/tokenizers` (pure JS port of Hugging Face tokenizers) from the parsed JSON.
 */

import { promises as fs, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { Tokenizer as HfJsTokenizer } from "@huggingface/tokenizers";
import { writeJsonAtomic } from "../io/atomic.js";
import { parseJsonText } from "../io/json.js";
import { BpeEncoder, type BpeTrainOptions, type BpeTrainStats, trainBpe } from "./bpe-trainer.js";
import { BYTE_LEVEL_ALPHABET } from "./byte-level.js";
import { GPT2_PATTERN, PRE_SPLIT_PATTERNS, type PreSplitPattern } from "./pretokenize.js";
import {
  bpeModelToTokenizerConfig,
  bpeModelToTokenizerJson,
  type TokenizerConfigJson,
  type TokenizerJson,
} from "./tokenizer-json.js";

export interface SpecialIds {
  eos: number;
  pad: number;
  bos?: number;
}

export interface DecodeOptions {
  /** Drop special tokens from the output. Default false. */
  skipSpecialTokens?: boolean;
}

export interface Tokenizer {
  /** Token ids of `text`; no BOS/EOS is added. */
  encode(text: string): number[];
  /** Text of `ids`; lossless inverse of encode for byte-level tokenizers without normalizer. */
  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string;
  /** Size of the id space (max id + 1, added tokens included): the embedding rows needed. */
  readonly vocabSize: number;
  readonly specialIds: SpecialIds;
  /**
   * Does a sequence start with bos, as transformers' tokenizer makes it (`add_special_tokens`)? True
   * for Llama's tokenizers (add_bos_token, or a TemplateProcessing post-processor that puts bos
   * first), false for Qwen2's and ours. LLMRec prompts start with bos when set.
   */
  readonly addBos?: boolean;
  /** Write tokenizer.json and tokenizer_config.json into `dir` (created if missing), atomically. */
  save(dir: string): Promise<void>;
}

/** A tokenizer.json or tokenizer_config.json that cannot be used; the message names the file. */
export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TokenizerError";
  }
}

/**
 * Which encoder runs `encode`: "hf" always uses @huggingface/tokenizers; "auto" (default) uses the
 * built-in byte-level BPE encoder when the tokenizer.json has a shape it reproduces exactly
 * (see {@link fastEncoderFor}; about 10x faster on long texts), else @huggingface/tokenizers.
 * Decoding always goes through @huggingface/tokenizers.
 */
export type TokenizerEngine = "auto" | "hf";

export interface LoadTokenizerOptions {
  engine?: TokenizerEngine;
}

export const TOKENIZER_FILE = "tokenizer.json";
export const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";

const EOS_CANDIDATES = ["<|endoftext|>", "</s>", "<|im_end|>", "<|end_of_text|>", "<eos>", "[SEP]"];
const PAD_CANDIDATES = ["<|pad|>", "<pad>", "[PAD]", "<|finetune_right_pad_id|>"];
const BOS_CANDIDATES = ["<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"];

function tokenText(t: TokenizerConfigJson["eos_token"]): string | undefined {
  if (t === null || t === undefined) return undefined;
  if (typeof t === "string") return t;
  if (typeof t === "object" && typeof t.content === "string") return t.content;
  return undefined;
}

/** A tokenizer.json loaded through @huggingface/tokenizers. */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly specialIds: SpecialIds;
  readonly addBos: boolean;
  /** The encoder in use: "fast" (built-in byte-level BPE) or "hf" (@huggingface/tokenizers). */
  readonly engine: "fast" | "hf";
  private readonly tok: HfJsTokenizer;
  private readonly fast: BpeEncoder | null;

  private constructor(
    readonly json: TokenizerJson,
    readonly config: TokenizerConfigJson,
    /** Where it came from (file path or "<memory>"), used in error messages. */
    readonly source: string,
    opts: LoadTokenizerOptions = {},
  ) {
    validateTokenizerJson(json, source);
    try {
      this.tok = new HfJsTokenizer(json, { clean_up_tokenization_spaces: false, ...config });
    } catch (err) {
      throw new TokenizerError(`${source}: cannot load tokenizer: ${(err as Error).message}`);
    }
    let max = -1;
    for (const id of this.tok.get_vocab(true).values()) if (id > max) max = id;
    for (const t of json.added_tokens ?? []) if (t.id > max) max = t.id;
    this.vocabSize = max + 1;
    this.specialIds = this.resolveSpecialIds();
    this.addBos = this.specialIds.bos !== undefined && addsBos(json, config, this.tok.id_to_token(this.specialIds.bos));
    this.fast = (opts.engine ?? "auto") === "auto" ? fastEncoderFor(json, config) : null;
    this.engine = this.fast ? "fast" : "hf";
  }

  /** Build from parsed tokenizer.json (+ optional tokenizer_config.json) objects. */
  static fromJson(
    json: unknown,
    config: TokenizerConfigJson = {},
    source = "<memory>",
    opts: LoadTokenizerOptions = {},
  ): HfTokenizer {
    return new HfTokenizer(json as TokenizerJson, config, source, opts);
  }

  /**
   * Load from a checkpoint/tokenizer directory (reads tokenizer.json and, when present,
   * tokenizer_config.json) or from a tokenizer.json path.
   */
  static async load(p: string, opts: LoadTokenizerOptions = {}): Promise<HfTokenizer> {
    const { jsonPath, configPath } = tokenizerPaths(p);
    const json = await readJson(jsonPath);
    let config: TokenizerConfigJson = {};
    try {
      config = (await readJson(configPath)) as TokenizerConfigJson;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    return new HfTokenizer(json as TokenizerJson, config, jsonPath, opts);
  }

  /** Synchronous variant of {@link HfTokenizer.load}. */
  static loadSync(p: string, opts: LoadTokenizerOptions = {}): HfTokenizer {
    const { jsonPath, configPath } = tokenizerPaths(p);
    const json = readJsonSync(jsonPath);
    let config: TokenizerConfigJson = {};
    try {
      config = readJsonSync(configPath) as TokenizerConfigJson;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    return new HfTokenizer(json as TokenizerJson, config, jsonPath, opts);
  }

  encode(text: string): number[] {
    if (this.fast) return this.fast.encode(text);
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** Encode many texts. */
  encodeBatch(texts: readonly string[]): number[][] {
    return texts.map((t) => this.encode(t));
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    return this.tok.decode(Array.from(ids), {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  /** Token strings (byte-level symbols for byte-level models) of `text`. */
  tokenize(text: string): string[] {
    return this.tok.tokenize(text, { add_special_tokens: false });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  async save(dir: string): Promise<void> {
    await fs.mkdir(dir, { recursive: true });
    await writeJsonAtomic(path.join(dir, TOKENIZER_FILE), this.json);
    await writeJsonAtomic(path.join(dir, TOKENIZER_CONFIG_FILE), this.config);
  }

  private resolveSpecialIds(): SpecialIds {
    const find = (configured: string | undefined, candidates: string[]): number | undefined => {
      if (configured !== undefined) {
        const id = this.tok.token_to_id(configured);
        if (id === undefined) {
          throw new TokenizerError(`${this.source}: special token ${JSON.stringify(configured)} from tokenizer_config.json is not in the vocabulary`);
        }
        return id;
      }
      for (const c of candidates) {
        const id = this.tok.token_to_id(c);
        if (id !== undefined) return id;
      }
      return undefined;
    };
    const eos = find(tokenText(this.config.eos_token), EOS_CANDIDATES);
    if (eos === undefined) {
      throw new TokenizerError(
        `${this.source}: no end-of-sequence token: set eos_token in tokenizer_config.json or add one of ${EOS_CANDIDATES.join(", ")}`,
      );
    }
    // pad_token null (Qwen2's and Llama's configs): pad with eos, as transformers users do
    // (`tokenizer.pad_token = tokenizer.eos_token`); the pad positions are masked anyway.
    const pad = this.config.pad_token === null ? eos : (find(tokenText(this.config.pad_token), PAD_CANDIDATES) ?? eos);
    // A bos is only reported when configured, or when a conventional bos token exists and the
    // config does not explicitly say null (Qwen2 sets bos_token: null).
    const bos =
      this.config.bos_token === null ? undefined : find(tokenText(this.config.bos_token), BOS_CANDIDATES);
    return bos === undefined ? { eos, pad } : { eos, pad, bos };
  }
}

/**
 * Whether transformers' tokenizer would put bos first: tokenizer_config.json `add_bos_token` when set
 * (transformers rebuilds the post-processor from it), else a TemplateProcessing post-processor (alone
 * or in a Sequence, as Llama 3's) whose single-sequence template starts with the bos token.
 */
function addsBos(json: TokenizerJson, config: TokenizerConfigJson, bos: string | undefined): boolean {
  if (typeof config.add_bos_token === "boolean") return config.add_bos_token;
  const pp = json.post_processor as { type?: unknown; processors?: unknown; single?: unknown } | null;
  const templates = pp?.type === "Sequence" && Array.isArray(pp.processors) ? pp.processors : [pp];
  for (const t of templates as { type?: unknown; single?: unknown }[]) {
    if (t?.type !== "TemplateProcessing" || !Array.isArray(t.single) || t.single.length === 0) continue;
    const first = t.single[0] as { SpecialToken?: { id?: unknown } };
    if (first?.SpecialToken?.id !== undefined && first.SpecialToken.id === bos) return true;
  }
  return false;
}

function tokenizerPaths(p: string): { jsonPath: string; configPath: string } {
  let isDir = false;
  try {
    isDir = statSync(p).isDirectory();
  } catch (err) {
    throw new TokenizerError(`${p}: cannot read tokenizer: ${(err as Error).message}`);
  }
  const jsonPath = isDir ? path.join(p, TOKENIZER_FILE) : p;
  return { jsonPath, configPath: path.join(path.dirname(jsonPath), TOKENIZER_CONFIG_FILE) };
}

async function readJson(file: string): Promise<unknown> {
  return parseJsonText(await fs.readFile(file, "utf8"), file, (m) => new TokenizerError(`${file}: ${m}`));
}

function readJsonSync(file: string): unknown {
  return parseJsonText(readFileSync(file, "utf8"), file, (m) => new TokenizerError(`${file}: ${m}`));
}

function validateTokenizerJson(json: TokenizerJson, source: string): void {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new TokenizerError(`${source}: tokenizer.json must be a JSON object`);
  }
  if (json.model === null || typeof json.model !== "object") {
    throw new TokenizerError(`${source}: tokenizer.json field "model" is missing or not an object`);
  }
  const vocab = (json.model as { vocab?: unknown }).vocab;
  if (vocab === null || typeof vocab !== "object") {
    throw new TokenizerError(`${source}: tokenizer.json field "model.vocab" is missing or not an object/array`);
  }
  if (json.added_tokens !== undefined && !Array.isArray(json.added_tokens)) {
    throw new TokenizerError(`${source}: tokenizer.json field "added_tokens" must be an array`);
  }
}

export interface TrainTokenizerOptions extends BpeTrainOptions {
  /** model_max_length written to tokenizer_config.json. Default 1024. */
  modelMaxLength?: number;
}

/**
 * Train a byte-level BPE tokenizer on `corpus` and load it through the same path as any external
 * tokenizer.json ({@link HfTokenizer.fromJson}).
 */
export function trainTokenizer(
  corpus: Iterable<string>,
  opts: TrainTokenizerOptions,
): { tokenizer: HfTokenizer; stats: BpeTrainStats } {
  const { model, stats } = trainBpe(corpus, opts);
  const json = bpeModelToTokenizerJson(model);
  const config = bpeModelToTokenizerConfig(model, opts.modelMaxLength ?? 1024);
  return { tokenizer: HfTokenizer.fromJson(json, config, "<trained>"), stats };
}

/** Load a tokenizer from a directory containing tokenizer.json, or a tokenizer.json path. */
export function loadTokenizer(p: string, opts: LoadTokenizerOptions = {}): Promise<HfTokenizer> {
  return HfTokenizer.load(p, opts);
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => x !== null && typeof x === "object" && !Array.isArray(x);

/**
 * The built-in encoder for a tokenizer.json when it reproduces @huggingface/tokenizers exactly,
 * else null. Supported shape: BPE model (no dropout, byte_fallback, ignore_merges, subword
 * prefix/suffix), every byte-level symbol and merge result in the vocab; normalizer null or NFC;
 * pre_tokenizer Sequence[Split(known regex, Isolated), ByteLevel(no prefix space, use_regex false)]
 * or ByteLevel(no prefix space, use_regex true) (GPT-2 regex); added tokens without
 * lstrip/rstrip/single_word; no legacy lowercasing/space removal in tokenizer_config.json.
 */
export function fastEncoderFor(json: TokenizerJson, config: TokenizerConfigJson = {}): BpeEncoder | null {
  const m = json.model as Obj;
  if (m.type !== "BPE" || !isObj(m.vocab) || !Array.isArray(m.merges)) return null;
  if (m.dropout || m.byte_fallback || m.ignore_merges || m.continuing_subword_prefix || m.end_of_word_suffix) return null;
  if (config.remove_space || config.do_lowercase_and_remove_accent) return null;
  let nfc = false;
  if (json.normalizer !== null && json.normalizer !== undefined) {
    if (isObj(json.normalizer) && json.normalizer.type === "NFC") nfc = true;
    else return null;
  }
  const byteLevelOk = (p: unknown, useRegex: boolean): boolean =>
    isObj(p) && p.type === "ByteLevel" && !p.add_prefix_space && (p.use_regex ?? true) === useRegex;
  let pattern: PreSplitPattern | undefined;
  const pre = json.pre_tokenizer;
  if (byteLevelOk(pre, true)) pattern = GPT2_PATTERN;
  else if (isObj(pre) && pre.type === "Sequence" && Array.isArray(pre.pretokenizers) && pre.pretokenizers.length === 2) {
    const [split, bl] = pre.pretokenizers as unknown[];
    if (!byteLevelOk(bl, false) || !isObj(split) || split.type !== "Split") return null;
    if (split.behavior !== "Isolated" || split.invert || !isObj(split.pattern)) return null;
    const rx = split.pattern.Regex;
    pattern = Object.values(PRE_SPLIT_PATTERNS).find((p) => p.oniguruma === rx);
  }
  if (!pattern) return null;
  if (!isObj(json.decoder) || json.decoder.type !== "ByteLevel") return null;
  const tokenToId = new Map<string, number>();
  for (const [t, id] of Object.entries(m.vocab)) {
    if (typeof id !== "number") return null;
    tokenToId.set(t, id);
  }
  for (const ch of BYTE_LEVEL_ALPHABET) if (!tokenToId.has(ch)) return null;
  const merges: [string, string][] = [];
  for (const mg of m.merges as unknown[]) {
    let pair: [string, string];
    if (typeof mg === "string") {
      const parts = mg.split(" ");
      if (parts.length !== 2) return null;
      pair = [parts[0], parts[1]];
    } else if (Array.isArray(mg) && mg.length === 2 && typeof mg[0] === "string" && typeof mg[1] === "string") {
      pair = [mg[0], mg[1]];
    } else return null;
    if (!tokenToId.has(pair[0] + pair[1])) return null;
    merges.push(pair);
  }
  const added = new Map<string, number>();
  for (const t of json.added_tokens ?? []) {
    if (t.lstrip || t.rstrip || t.single_word || typeof t.content !== "string" || t.content.length === 0) return null;
    added.set(t.content, t.id);
  }
  return new BpeEncoder({ tokenToId, merges, pattern, added, nfc });
}
