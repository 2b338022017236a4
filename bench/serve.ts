/**
 * Load check of the recommendation service (not part of `npm test` nor `npm run bench`):
 * `evorec serve` runs as its own process on 127.0.0.1 with a randomly initialised `small` LLMRec (the
 * cost of scoring does not depend on the weights) over the embedded Beauty titles; autocannon sends
 * recommendation requests for random users for a fixed time, and reports requests per second and the
 * latency percentiles.
 *
 *   node --import tsx bench/serve.ts      (BENCH_SECONDS, default 15; BENCH_CONNECTIONS, default 2)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { loadSplit } from '../src/data/prepare.js';
import { decoderPreset } from '../src/io/hf-config.js';
import { LLMRec } from '../src/models/llmrec.js';
import { saveLLMRec } from '../src/models/llmrec-io.js';
import { PromptBuilder } from '../src/models/prompt.js';
import { Decoder } from '../src/nn/decoder.js';
import { startServe } from '../src/serve/test-utils/fixture.js';
import { trainTokenizer } from '../src/tokenizer/index.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 15);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 2);
const USERS = 500;
const TOKEN = 'bench-token-0123456789';

const dir = mkdtempSync(join(tmpdir(), 'evorec-bench-serve-'));
const { split } = await loadSplit({ data: 'beauty' });
const ds = split.dataset;
const { tokenizer } = trainTokenizer(ds.titles, { vocabSize: 8000 });
const decoder = new Decoder(decoderPreset('small', { vocabSize: tokenizer.vocabSize }), { seed: 1 });
decoder.addAdapter('default', { r: 16, alpha: 32, dropout: 0 }, { seed: 1, freezeBase: true });
const modelDir = join(dir, 'llmrec');
await saveLLMRec(modelDir, new LLMRec(decoder, new PromptBuilder(tokenizer, ds.titles, { history: 10 })));

const svc = await startServe(['--db', join(dir, 'bench.db'), '--model', modelDir, '--models-root', dir, '--token', TOKEN, '--pool', '20', '--quiet']);
const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const post = async (path: string, body: unknown, method = 'POST') => {
  const r = await fetch(svc.url + path, { method, headers, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
};
const items = ds.itemIds.map((id, k) => ({ id, title: ds.titles[k] }));
for (let i = 0; i < items.length; i += 1000) await post('/v1/items', { items: items.slice(i, i + 1000) }, 'PUT');
const rows = [];
for (let r = 0; r < ds.numInteractions; r++) if (ds.users[r] < USERS) rows.push({ id: `b${r}`, user: ds.userIds[ds.users[r]], item: ds.itemIds[ds.items[r]], timestamp: ds.timestamps[r] });
for (let i = 0; i < rows.length; i += 1000) await post('/v1/interactions', { interactions: rows.slice(i, i + 1000) });
const users = ds.userIds.slice(0, USERS);
console.log(`service ${svc.url}: ${items.length} items, ${users.length} users, ${rows.length} interactions; small preset (${decoder.config.numHiddenLayers} layers, d ${decoder.config.hiddenSize}), H = 10`);

let k = 0;
const scenario = (name: string, body: () => unknown) =>
  autocannon({
    url: `${svc.url}/v1/recommendations`,
    method: 'POST',
    headers,
    connections,
    duration: seconds,
    requests: [{ setupRequest: (req) => ({ ...req, body: JSON.stringify(body()) }) }],
  }).then((r) => {
    const ok = r['2xx'];
    console.log(
      `| ${name} | ${connections} | ${seconds} | ${ok} | ${r.non2xx} | ${(ok / seconds).toFixed(1)} | ${r.latency.p50} | ${r.latency.p99} |`,
    );
  });
console.log('| request | connections | seconds | 2xx | non-2xx | requests/s | p50 ms | p99 ms |');
console.log('|---|---|---|---|---|---|---|---|');
await scenario('pool: 20 popular unseen items, top 10', () => ({ user: users[k++ % users.length], k: 10 }));
const cands = Array.from({ length: 20 }, (_, j) => ds.itemIds[(j * 37) % ds.numItems]);
await scenario('20 given candidates, top 10', () => ({ user: users[k++ % users.length], k: 10, candidates: cands }));
await scenario('5 given candidates, top 3', () => ({ user: users[k++ % users.length], k: 3, candidates: cands.slice(0, 5) }));
const m = await (await fetch(`${svc.url}/metrics`, { headers })).json();
console.log(`service-side latency of POST /v1/recommendations (last 4096): ${JSON.stringify(m.routes['POST /v1/recommendations'].latencyMs)}`);
svc.proc.kill('SIGTERM');
await svc.exited;
rmSync(dir, { recursive: true, force: true });
