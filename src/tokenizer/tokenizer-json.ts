/**
 * Serialisation of a trained {@link BpeModel} to Hugging Face `tokenizer.json` (+ `tokenizer_config.json`).
 *
 * Layout follows Qwen2's tokenizer.json: no normalizer (so encode/decode is lossless on any text),
 * a Sequence pre-tokenizer [Split(regex, Isolated), ByteLevel(use_regex=false)], a BPE model with
 * byte-level vocab and "left right" merges, ByteLevel post-processor and decoder, special tokens
 * in `added_tokens` (special=true, normalized=false) and also in the model vocab.
 */

import type { BpeModel } from "./bpe-trainer.js";

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

export interface TokenizerJson {
  version: string;
  truncation: null | Record<string, unknown>;
  padding: null | Record<string, unknown>;
  added_tokens: AddedTokenJson[];
  normalizer: null | Record<string, unknown>;
  pre_tokenizer: null | Record<string, unknown>;
  post_processor: null | Record<string, unknown>;
  decoder: null | Record<string, unknown>;
  model: Record<string, unknown>;
}

/** The subset of tokenizer_config.json we read and write. */
export interface TokenizerConfigJson {
  tokenizer_class?: string;
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  pad_token?: string | { content: string } | null;
  unk_token?: string | { content: string } | null;
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  model_max_length?: number;
  clean_up_tokenization_spaces?: boolean;
  added_tokens_decoder?: Record<string, Omit<AddedTokenJson, "id">>;
  [k: string]: unknown;
}

const BYTE_LEVEL = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };

export function bpeModelToTokenizerJson(model: BpeModel): TokenizerJson {
  const vocab: Record<string, number> = {};
  model.vocab.forEach((t, i) => {
    if (t in vocab) throw new Error(`tokenizer.json: duplicate token ${JSON.stringify(t)} (ids ${vocab[t]} and ${i})`);
    vocab[t] = i;
  });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: model.specialTokens.map((s) => ({ id: s.id, ...specialTokenFields(s.content) })),
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: model.pattern.oniguruma }, behavior: "Isolated", invert: false },
        { ...BYTE_LEVEL },
      ],
    },
    post_processor: { ...BYTE_LEVEL },
    decoder: { ...BYTE_LEVEL },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      // Byte-level symbols never contain a space, so the classic "left right" string form is exact.
      merges: model.merges.map(([l, r]) => `${l} ${r}`),
    },
  };
}

export function bpeModelToTokenizerConfig(model: BpeModel, modelMaxLength = 1024): TokenizerConfigJson {
  const decoder: Record<string, Omit<AddedTokenJson, "id">> = {};
  for (const s of model.specialTokens) {
    decoder[String(s.id)] = specialTokenFields(s.content);
  }
  return {
    tokenizer_class: "PreTrainedTokenizerFast",
    add_bos_token: false,
    add_eos_token: false,
    bos_token: model.bosToken ?? null,
    eos_token: model.eosToken,
    pad_token: model.padToken,
    unk_token: null,
    model_max_length: modelMaxLength,
    clean_up_tokenization_spaces: false,
    added_tokens_decoder: decoder,
  };
}

/** How a special token is written in tokenizer.json's added_tokens and tokenizer_config.json. */
function specialTokenFields(content: string) {
  return { content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}
