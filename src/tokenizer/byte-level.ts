/**
 * GPT-2 / Qwen2 "ByteLevel" mapping: every byte 0..255 maps to one printable Unicode
 * character, so that a BPE vocabulary over these characters covers any UTF-8 text losslessly.
 *
 * The table is the one of OpenAI's `bytes_to_unicode()` (also used by Hugging Face tokenizers):
 * printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in byte order
 * (so the space byte 0x20 becomes "Ġ" U+0120 and "\n" becomes "Ċ" U+010A).
 */

function buildTables(): { byteToChar: string[]; charToByte: Map<string, number> } {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const keepSet = new Set(keep);
  const byteToChar: string[] = new Array(256);
  for (const b of keep) byteToChar[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!keepSet.has(b)) {
      byteToChar[b] = String.fromCharCode(256 + n);
      n++;
    }
  }
  const charToByte = new Map<string, number>();
  for (let b = 0; b < 256; b++) charToByte.set(byteToChar[b], b);
  return { byteToChar, charToByte };
}

const TABLES = buildTables();

/** byte value -> its one-character byte-level symbol. */
export const BYTE_TO_UNICODE: readonly string[] = TABLES.byteToChar;
/** byte-level symbol -> byte value. */
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = TABLES.charToByte;

/** The 256 byte-level symbols sorted by code point (the initial BPE alphabet). */
export const BYTE_LEVEL_ALPHABET: readonly string[] = [...TABLES.byteToChar].sort(
  (a, b) => a.charCodeAt(0) - b.charCodeAt(0),
);

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

/** UTF-8 encode `text` and map every byte to its byte-level symbol (lone surrogates become U+FFFD). */
export function toByteLevel(text: string): string {
  const t = TABLES.byteToChar;
  let out = "";
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out += t[c];
      continue;
    }
    if (c < 0x800) {
      out += t[0xc0 | (c >> 6)] + t[0x80 | (c & 0x3f)];
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        out += t[0xf0 | (c >> 18)] + t[0x80 | ((c >> 12) & 0x3f)] + t[0x80 | ((c >> 6) & 0x3f)] + t[0x80 | (c & 0x3f)];
        continue;
      }
      c = 0xfffd; // lone surrogate, as TextEncoder does
    }
    out += t[0xe0 | (c >> 12)] + t[0x80 | ((c >> 6) & 0x3f)] + t[0x80 | (c & 0x3f)];
  }
  return out;
}

/**
 * Inverse of {@link toByteLevel}: map byte-level symbols back to bytes and UTF-8 decode.
 * Characters outside the byte-level alphabet (e.g. special tokens' text) are UTF-8 encoded as is.
 */
export function fromByteLevel(symbols: string): string {
  const bytes: number[] = [];
  for (const ch of symbols) {
    const b = TABLES.charToByte.get(ch);
    if (b !== undefined) bytes.push(b);
    else for (const x of encoder.encode(ch)) bytes.push(x);
  }
  return decoder.decode(Uint8Array.from(bytes));
}
