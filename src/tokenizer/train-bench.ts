/**
 * Tokenizer training speed on the embedded datasets:
 *   node --import tsx src/tokenizer/train-bench.ts [vocabSize=8000]
 *
 * Corpus: every catalogue title of both datasets, plus one line per interaction made of the
 * user's last (up to) 5 item titles joined by "; " (the kind of text used for domain-adaptive
 * pretraining). Prints the time of each phase.
 */

import { readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { parse } from "csv-parse/sync";
import { trainTokenizer } from "./tokenizer.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const rows = (rel: string) => parse(gunzipSync(readFileSync(path.join(ROOT, rel))), { columns: true }) as Record<string, string>[];

function corpus(): { titles: string[]; lines: string[] } {
  const titles: string[] = [];
  const lines: string[] = [];
  for (const ds of ["amazon-beauty-2014-5core", "movielens-latest-small"]) {
    const items = rows(`data/${ds}/items.csv.gz`);
    const title = new Map(items.map((r) => [r.item_id, r.title]));
    titles.push(...items.map((r) => r.title));
    const byUser = new Map<string, string[]>();
    for (const r of rows(`data/${ds}/interactions.csv.gz`)) {
      let l = byUser.get(r.user_id);
      if (!l) byUser.set(r.user_id, (l = []));
      l.push(title.get(r.item_id) ?? "");
    }
    for (const seq of byUser.values()) for (let i = 0; i < seq.length; i++) lines.push(seq.slice(Math.max(0, i - 4), i + 1).join("; "));
  }
  return { titles, lines };
}

const vocabSize = Number(process.argv[2] ?? 8000);
let t = performance.now();
const { titles, lines } = corpus();
const mb = (a: string[]) => (a.reduce((s, x) => s + Buffer.byteLength(x), 0) / 1e6).toFixed(1);
console.log(`corpus: ${titles.length} titles (${mb(titles)} MB), ${lines.length} lines (${mb(lines)} MB) read in ${((performance.now() - t) / 1000).toFixed(1)} s`);

t = performance.now();
const a = trainTokenizer(titles, { vocabSize });
console.log(`titles only: vocab ${a.tokenizer.vocabSize}, ${a.stats.distinctWords} distinct words, ${a.stats.merges} merges: ${((performance.now() - t) / 1000).toFixed(2)} s`);

t = performance.now();
const b = trainTokenizer([...titles, ...lines], { vocabSize });
console.log(`titles + lines: vocab ${b.tokenizer.vocabSize}, ${b.stats.distinctWords} distinct words, ${b.stats.merges} merges: ${((performance.now() - t) / 1000).toFixed(2)} s`);

t = performance.now();
let n = 0;
for (const l of lines) n += b.tokenizer.encode(l).length;
const s = (performance.now() - t) / 1000;
console.log(`encode all lines (engine ${b.tokenizer.engine}): ${n} tokens in ${s.toFixed(2)} s (${(n / s / 1e6).toFixed(2)} M tokens/s)`);
