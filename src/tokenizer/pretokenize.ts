/**
 * Regex pre-split used before byte-level BPE.
 *
 * Each preset has two spellings of one pattern: `oniguruma`, written into tokenizer.json exactly as
 * Hugging Face's Rust `tokenizers` (and the Python ecosystem) expect it, and `js`, an equivalent
 * JavaScript RegExp used by the trainer and the reference encoder here. `\s` is spelled
 * `\p{White_Space}` in JS because JavaScript's `\s` also matches U+FEFF and misses U+0085, unlike
 * Oniguruma. Their agreement is checked by the tests (ids of the reference encoder equal ids of the
 * tokenizer.json loaded through @huggingface/tokenizers on every catalogue title).
 */

export type PreSplitName = "qwen2" | "gpt2";

export interface PreSplitPattern {
  name: PreSplitName;
  /** Pattern as written in tokenizer.json (`{"Regex": ...}` of a Split pre-tokenizer). */
  oniguruma: string;
  /** Equivalent JavaScript pattern source, compiled with flags "gu". */
  js: string;
}

const WS = "\\p{White_Space}";
const NOT_WS = "\\P{White_Space}";

/** Qwen2 / Llama-3 style: contractions, letter runs with one leading non-letter, single digits. */
export const QWEN2_PATTERN: PreSplitPattern = {
  name: "qwen2",
  oniguruma:
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  js:
    "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" +
    WS +
    "\\p{L}\\p{N}]+[\\r\\n]*|" +
    WS +
    "*[\\r\\n]+|" +
    WS +
    "+(?!" +
    NOT_WS +
    ")|" +
    WS +
    "+",
};

/** GPT-2 style: contractions, optional space + letter run / digit run / symbol run. */
export const GPT2_PATTERN: PreSplitPattern = {
  name: "gpt2",
  oniguruma: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  js:
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" +
    WS +
    "\\p{L}\\p{N}]+|" +
    WS +
    "+(?!" +
    NOT_WS +
    ")|" +
    WS +
    "+",
};

export const PRE_SPLIT_PATTERNS: Record<PreSplitName, PreSplitPattern> = {
  qwen2: QWEN2_PATTERN,
  gpt2: GPT2_PATTERN,
};

/**
 * Split `text` into pre-tokens with the JS spelling of `pattern` ("Isolated" behaviour: the matches
 * and the gaps between them are all kept, so concatenating the pieces gives `text` back).
 */
export function preSplit(text: string, pattern: PreSplitPattern = QWEN2_PATTERN): string[] {
  const re = compiled(pattern);
  const out: string[] = [];
  let last = 0;
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    out.push(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

const cache = new Map<string, RegExp>();
function compiled(p: PreSplitPattern): RegExp {
  let re = cache.get(p.js);
  if (!re) {
    re = new RegExp(p.js, "gu");
    cache.set(p.js, re);
  }
  return re;
}

/**
 * Split `text` around occurrences of the given special tokens (longest match first).
 * Returns pieces tagged with whether they are a special token.
 */
export function splitSpecial(
  text: string,
  specials: readonly string[],
): { text: string; special: boolean }[] {
  if (specials.length === 0 || text.length === 0) return text.length ? [{ text, special: false }] : [];
  const re = specialRegex(specials);
  const out: { text: string; special: boolean }[] = [];
  let last = 0;
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m.index > last) out.push({ text: text.slice(last, m.index), special: false });
    out.push({ text: m[0], special: true });
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last), special: false });
  return out;
}

const specialCache = new Map<string, RegExp>();
function specialRegex(specials: readonly string[]): RegExp {
  const key = specials.join("\u0000");
  let re = specialCache.get(key);
  if (!re) {
    const sorted = [...specials].sort((a, b) => b.length - a.length);
    re = new RegExp(sorted.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
    specialCache.set(key, re);
  }
  return re;
}
