/**
 * Streaming text input: plain or gzip (detected by its magic bytes, not the file name), never the whole
 * file in memory. Errors from the decompressor are reported with the file name and the line reached;
 * binary data (a NUL byte) and bytes that are not UTF-8 are reported as such, at their line.
 */
import { isUtf8 } from 'node:buffer';
import { createReadStream, promises as fs } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { Readable, Transform } from 'node:stream';
import { DataError } from './errors.js';

/** Opens a file as a stream of bytes, transparently gunzipping it when it starts with the gzip magic. */
export async function openDecoded(file: string): Promise<Readable> {
  let head: Buffer;
  const fh = await fs.open(file, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new DataError(file, e.code === 'ENOENT' ? 'file not found' : `cannot open (${e.message})`);
  });
  try {
    head = Buffer.alloc(2);
    await fh.read(head, 0, 2, 0);
  } finally {
    await fh.close();
  }
  const raw = createReadStream(file);
  const gzip = head[0] === 0x1f && head[1] === 0x8b;
  if (!gzip && file.endsWith('.gz')) throw new DataError(file, 'not a gzip file (no gzip header), but the name ends in .gz');
  const text = textCheck(file);
  const decoded = gzip ? raw.pipe(createGunzip()) : raw;
  decoded.on('error', (e: Error) => text.destroy(e));
  return decoded.pipe(text);
}

/** Bytes at the end of `b` that start a UTF-8 sequence the next chunk completes. */
function incompleteTail(b: Buffer): number {
  for (let k = 1; k <= Math.min(4, b.length); k++) {
    const c = b[b.length - k];
    if ((c & 0xc0) === 0x80) continue;
    const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > k ? k : 0;
  }
  return 0;
}

/** Offset of the first byte that does not start a well-formed UTF-8 sequence (0 when only overlong forms are wrong). */
function firstBadUtf8(b: Buffer): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    const n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (n < 0) return i;
    for (let k = 1; k <= n; k++) if (i + k >= b.length || (b[i + k] & 0xc0) !== 0x80) return i;
    i += n + 1;
  }
  return 0;
}

function countNewlines(b: Buffer, end: number): number {
  let n = 0;
  for (let i = b.indexOf(10); i >= 0 && i < end; i = b.indexOf(10, i + 1)) n++;
  return n;
}

/**
 * Passes the decoded bytes through unchanged, and fails with a DataError at the right line on a NUL byte
 * (binary data: no text format here has one) or on bytes that are not UTF-8.
 */
function textCheck(file: string): Transform {
  let offset = 0; // bytes checked before `carry`
  let lines = 0; // newlines in them
  let carry = Buffer.alloc(0);
  const check = (buf: Buffer, final: boolean): DataError | null => {
    const tail = final ? 0 : incompleteTail(buf);
    const body = tail ? buf.subarray(0, buf.length - tail) : buf;
    const nul = body.indexOf(0);
    let bad = -1;
    let what = '';
    if (nul >= 0) {
      bad = nul;
      what = `binary data (a NUL byte at offset ${offset + nul}), not text: expected a CSV/TSV, JSON-lines or RecBole file, plain or gzip`;
    } else if (!isUtf8(body)) {
      bad = firstBadUtf8(body);
      what = `not UTF-8 text (byte 0x${body[bad].toString(16).padStart(2, '0')} at offset ${offset + bad}): save the file as UTF-8`;
    }
    if (bad >= 0) return new DataError(file, what, { line: lines + countNewlines(body, bad) + 1 });
    lines += countNewlines(body, body.length);
    offset += body.length;
    carry = tail ? Buffer.from(buf.subarray(buf.length - tail)) : Buffer.alloc(0);
    return null;
  };
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const err = check(carry.length ? Buffer.concat([carry, chunk]) : chunk, false);
      if (err) cb(err);
      else cb(null, chunk);
    },
    flush(cb) {
      cb(carry.length ? check(carry, true) : null);
    },
  });
}

/** Wraps a stream error (bad gzip, truncated file) as a DataError naming the file and the line reached. */
export function streamError(file: string, line: number, e: unknown): DataError {
  if (e instanceof DataError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  // zlib's errors carry a Z_ code (Z_DATA_ERROR, Z_BUF_ERROR for a truncated stream).
  const code = (e as { code?: unknown }).code;
  const gz = typeof code === 'string' && code.startsWith('Z_') ? 'corrupt or truncated gzip data: ' : '';
  return new DataError(file, `${gz}${msg}`, { line, cause: e });
}

/**
 * Yields the lines of a text file (plain or gzip) with 1-based line numbers. A trailing "\r" is removed,
 * a UTF-8 byte-order mark on the first line too.
 */
export async function* readLines(file: string): AsyncGenerator<{ text: string; line: number }> {
  const stream = await openDecoded(file);
  stream.setEncoding?.('utf8');
  let rest = '';
  let line = 0;
  try {
    for await (const chunk of stream as AsyncIterable<string | Buffer>) {
      const s = rest + (typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
      let start = 0;
      for (;;) {
        const nl = s.indexOf('\n', start);
        if (nl < 0) break;
        line++;
        let text = s.slice(start, nl);
        if (text.endsWith('\r')) text = text.slice(0, -1);
        if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
        yield { text, line };
        start = nl + 1;
      }
      rest = s.slice(start);
    }
  } catch (e) {
    throw streamError(file, line + 1, e);
  }
  if (rest.length > 0) {
    line++;
    let text = rest.endsWith('\r') ? rest.slice(0, -1) : rest;
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    yield { text, line };
  }
}
