/**
 * Streaming text input: plain or gzip (detected by its magic bytes, not the file name), never the whole
 * file in memory. Errors from the decompressor are reported with the file name and the line reached.
 */
import { createReadStream, promises as fs } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { Readable } from 'node:stream';
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
  if (head[0] === 0x1f && head[1] === 0x8b) return raw.pipe(createGunzip());
  if (file.endsWith('.gz')) throw new DataError(file, 'not a gzip file (no gzip header), but the name ends in .gz');
  return raw;
}

/** Wraps a stream error (bad gzip, truncated file) as a DataError naming the file and the line reached. */
export function streamError(file: string, line: number, e: unknown): DataError {
  if (e instanceof DataError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const gz = /gzip|header check|unexpected end|invalid|incorrect/i.test(msg) ? 'corrupt or truncated gzip data: ' : '';
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
