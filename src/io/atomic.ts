import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import * as path from "node:path";

/** Temp-file name beside `target` (same directory, so rename is atomic on one filesystem). */
export function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  return path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
}

/**
 * Write `data` to `target` atomically: write a temp file in the same directory, fsync it, then
 * rename it into place. On failure the temp file is removed and `target` is left untouched.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array | readonly Uint8Array[]): Promise<void> {
  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  const fh = await fs.open(tmp, "w");
  try {
    if (typeof data === "string" || data instanceof Uint8Array) {
      await fh.writeFile(data);
    } else {
      for (const chunk of data) await writeAll(fh, chunk);
    }
    await fh.sync();
    await fh.close();
    await fs.rename(tmp, target);
  } catch (err) {
    await fh.close().catch(() => {});
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
}

async function writeAll(fh: fs.FileHandle, chunk: Uint8Array): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
    off += bytesWritten;
  }
}

/** JSON.stringify with 2-space indent and a trailing newline, written atomically. */
export async function writeJsonAtomic(target: string, value: unknown): Promise<void> {
  await writeFileAtomic(target, JSON.stringify(value, null, 2) + "\n");
}
