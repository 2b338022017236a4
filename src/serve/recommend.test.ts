/**
 * Recommendations through the HTTP API with the scoring pool (in-process service, real SQLite, real
 * server on 127.0.0.1): concurrent requests rank as sequential ones and as the library does (LLMRec.score,
 * and the two-stage function over the version's SASRec), the event loop answers while a slow request is
 * scored, cold-start users get recent popularity, the limits answer exact 400s, and an activation reloads
 * the workers.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../data/test-utils/tmp.js';
import { twoStage } from '../eval/full-ranking.js';
import { loadLLMRec } from '../models/llmrec-io.js';
import { loadSASRec } from '../models/sasrec-io.js';
import { createService, type Service } from './server.js';
import { addRetriever, ITEMS, interactions, NAMES, tinyLLMRecFolder } from './test-utils/fixture.js';

const TOKEN = 'test-token-0123456789';
const DEPTH = 5;
const USERS = 12;
const BASE = interactions('base', USERS, 4);
const itemsOf = (user: string) => BASE.filter((r) => r.user === user).map((r) => r.item);
const idx = (id: string) => Number(id.slice(1));

type Ranked = { id: string; score: number }[];

function client(base: string) {
  return async (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const r = await fetch(base + path, { method, headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
}

const sorted = (ids: readonly string[], scores: ArrayLike<number>): Ranked =>
  ids.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b).map((i) => ({ id: ids[i], score: scores[i] }));

/** The library's answers for a version folder: LLMRec.score of given candidates, and the two-stage ranking (SASRec top DEPTH unseen, LLMRec re-rank). */
async function library(folder: string) {
  const { model } = await loadLLMRec(folder, NAMES);
  const { model: sasrec, itemIds } = await loadSASRec(join(folder, 'sasrec'));
  const sasIndex = new Map(itemIds.map((id, i) => [id, i]));
  return {
    given: (user: string, candidates: string[]) => sorted(candidates, model.score([itemsOf(user).map(idx)], [candidates.map(idx)])[0]),
    full: async (user: string) => {
      const seen = new Set(itemsOf(user));
      const { lists, scores } = await twoStage(
        [user],
        (us) => sasrec.scoreAll(us.map((u) => itemsOf(u).map((id) => sasIndex.get(id)!))),
        () => (i) => !seen.has(itemIds[i]),
        (us, ls) => model.score(us.map((u) => itemsOf(u).map(idx)), ls.map((l) => l.map((i) => idx(itemIds[i])))),
        DEPTH,
      );
      return sorted(lists[0].map((i) => itemIds[i]), scores[0]);
    },
  };
}

const near = (got: Ranked, want: Ranked, what: string) => {
  assert.deepEqual(got.map((x) => x.id), want.map((x) => x.id), `${what}: ranking`);
  got.forEach((x, j) => assert.ok(Math.abs(x.score - want[j].score) < 1e-5, `${what}: ${x.id} scored ${x.score}, expected ${want[j].score}`));
};
const ranked = (r: { body: { items: Ranked } }): Ranked => r.body.items.map(({ id, score }) => ({ id, score }));

describe('recommendations with the scoring pool', () => {
  let dir: string;
  let folderA: string;
  let folderB: string;
  let service: Service;
  let call: ReturnType<typeof client>;
  const CANDIDATES = ['i0', 'i2', 'i5', 'i8', 'i9', 'i12', 'i13', 'i15'];

  before(async () => {
    dir = realpathSync(tempDir('evorec-recommend-'));
    // Two versions; their retrievers list the items in other orders than the catalogue (mapped by id).
    folderA = await tinyLLMRecFolder(dir, 'tiny', { name: 'a', seed: 1 });
    await addRetriever(folderA, [...ITEMS].reverse().map((it) => it.id), 1);
    folderB = await tinyLLMRecFolder(dir, 'tiny', { name: 'b', seed: 2 });
    await addRetriever(folderB, ITEMS.map((it) => it.id).sort(), 2);
    service = await createService({ db: join(dir, 'rec.db'), model: folderA, token: TOKEN, modelsRoot: dir, workers: 2, batch: 4, depth: DEPTH, maxCandidates: 8, popularityWindow: 16, maxPromptTokens: 1000 });
    call = client(await service.app.listen({ host: '127.0.0.1', port: 0 }));
    assert.equal((await call('PUT', '/v1/items', { items: ITEMS })).status, 200);
    assert.equal((await call('POST', '/v1/interactions', { interactions: BASE })).status, 200);
  });
  after(async () => service.close());

  it('concurrent requests rank as sequential ones, and as LLMRec.score and the two-stage function of the library', async () => {
    const users = Array.from({ length: USERS }, (_, u) => `u${u}`);
    const requests = users.flatMap((user) => [{ user, k: DEPTH }, { user, k: 8, candidates: CANDIDATES }]);
    const sequential = [];
    for (const body of requests) sequential.push(await call('POST', '/v1/recommendations', body));
    const concurrent = await Promise.all(requests.map((body) => call('POST', '/v1/recommendations', body)));
    const lib = await library(folderA);
    for (const [i, body] of requests.entries()) {
      const what = `${body.user} ${body.candidates ? 'given' : 'full'}`;
      assert.equal(sequential[i].status, 200, JSON.stringify(sequential[i].body));
      assert.equal(concurrent[i].status, 200, JSON.stringify(concurrent[i].body));
      assert.equal(concurrent[i].body.source, body.candidates ? 'given' : 'two-stage');
      near(ranked(concurrent[i]), ranked(sequential[i]), `${what}, concurrent vs sequential`);
      near(ranked(sequential[i]), body.candidates ? lib.given(body.user, CANDIDATES) : await lib.full(body.user), `${what}, served vs library`);
      if (!body.candidates) for (const it of concurrent[i].body.items) assert.ok(!itemsOf(body.user).includes(it.id), `${what}: ${it.id} was seen`);
    }
  });

  it('answers /healthz and ingests while a slow scoring request is in flight', async () => {
    // A slower model: the `small` preset over 256 titles, all of them given as candidates, one worker.
    const titles = NAMES.flatMap((a) => NAMES.map((b) => `${a} ${b}`));
    const items = titles.map((title, k) => ({ id: `s${k}`, title }));
    const folder = await tinyLLMRecFolder(dir, 'small', { name: 'slow', titles });
    const slow = await createService({ db: join(dir, 'slow.db'), model: folder, token: TOKEN, modelsRoot: dir, workers: 1, maxCandidates: 256 });
    try {
      const c = client(await slow.app.listen({ host: '127.0.0.1', port: 0 }));
      await c('PUT', '/v1/items', { items });
      await c('POST', '/v1/interactions', { interactions: [0, 17, 40].map((k, j) => ({ id: `w${j}`, user: 'w', item: `s${k}`, timestamp: 1_700_000_000 + j })) });
      let scoredAt = 0;
      const request = c('POST', '/v1/recommendations', { user: 'w', k: 3, candidates: items.map((it) => it.id) }).then((r) => ((scoredAt = performance.now()), r));
      while (slow.host.pool.busy === 0) await new Promise((r) => setImmediate(r));
      const t0 = performance.now();
      const health = await c('GET', '/healthz');
      const healthAt = performance.now();
      const ingest = await c('POST', '/v1/interactions', { interactions: [{ id: 'w3', user: 'w2', item: 's3' }] });
      const ingestAt = performance.now();
      assert.equal(health.status, 200);
      assert.equal(ingest.status, 200);
      assert.equal(scoredAt, 0, 'the event loop answered /healthz and the ingestion while the request was being scored');
      assert.ok(healthAt - t0 < 1000 && ingestAt - t0 < 2000, `healthz in ${(healthAt - t0).toFixed(1)} ms, ingestion in ${(ingestAt - healthAt).toFixed(1)} ms (generous bounds)`);
      const r = await request;
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.items.length, 3);
    } finally {
      await slow.close();
    }
  });

  it('a user without interactions gets recent popularity, labelled as such (of the catalogue, or of the given candidates)', async () => {
    // The window is the last 16 interactions: counts there, ties to the most recently interacted with.
    const windowRows = BASE.slice(-16);
    const counts = new Map<string, { count: number; last: number }>();
    windowRows.forEach((r, seq) => counts.set(r.item, { count: (counts.get(r.item)?.count ?? 0) + 1, last: seq }));
    const expected = [...counts].sort((a, b) => b[1].count - a[1].count || b[1].last - a[1].last).map(([id, e]) => ({ id, score: e.count }));
    const older = BASE.slice(0, -16).map((r) => r.item).filter((id) => !counts.has(id));
    assert.ok(older.length > 0, 'the fixture has items only older interactions touched');

    const r = await call('POST', '/v1/recommendations', { user: 'newcomer', k: 5 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.source, 'popularity');
    assert.deepEqual(r.body.history, []);
    assert.deepEqual(ranked(r), expected.slice(0, 5));
    const get = await call('GET', `/v1/users/newcomer/recommendations?k=${DEPTH}`);
    assert.equal(get.body.source, 'popularity');
    assert.deepEqual(ranked(get), expected.slice(0, DEPTH));
    const last = expected.at(-1)!;
    assert.ok(expected[0].score > last.score, 'the fixture has items of several counts');
    const given = await call('POST', '/v1/recommendations', { user: 'newcomer', k: 3, candidates: [older[0], last.id, expected[0].id] });
    assert.equal(given.body.source, 'popularity');
    assert.deepEqual(ranked(given), [expected[0], last, { id: older[0], score: 0 }], 'an item only older interactions touched counts 0');
  });

  it('limits: candidates, k, the full-catalogue depth, prompt length, and the retriever folder answer exact 400s', async () => {
    const expect = async (r: Promise<{ status: number; body: { error: string } }>, message: string) => {
      const { status, body } = await r;
      assert.equal(status, 400, JSON.stringify(body));
      assert.equal(body.error, message);
    };
    await expect(call('POST', '/v1/recommendations', { user: 'u0', candidates: [...CANDIDATES, 'i1'] }), 'body.candidates must NOT have more than 8 items');
    await expect(call('POST', '/v1/recommendations', { user: 'u0', k: 1001 }), 'body.k must be <= 1000');
    await expect(call('POST', '/v1/recommendations', { user: 'u0', k: DEPTH + 1 }), `body.k: ${DEPTH + 1} is above the full-catalogue depth ${DEPTH} (the retriever's items that LLMRec re-ranks; --depth)`);
    await expect(call('GET', `/v1/users/u0/recommendations?k=${DEPTH + 1}`), `querystring.k: ${DEPTH + 1} is above the full-catalogue depth ${DEPTH} (the retriever's items that LLMRec re-ranks; --depth)`);
    assert.equal((await call('POST', '/v1/recommendations', { user: 'u0', k: 8, candidates: CANDIDATES })).status, 200, 'k above the depth is fine with given candidates');

    const long = await tinyLLMRecFolder(dir, 'tiny', { name: 'long-prompt', history: 50 });
    const r = await call('POST', '/v1/versions', { folder: 'long-prompt', trainedUpTo: 'latest' });
    assert.equal(r.status, 400);
    assert.match(r.body.error, new RegExp(`^body\\.folder: ${long}: prompts of up to \\d+ tokens \\(H = 50 titles of up to 24 tokens\\) are above the service's limit of 1000 tokens \\(--max-prompt-tokens\\)$`));

    const broken = join(dir, 'broken-retriever');
    cpSync(folderA, broken, { recursive: true });
    const cfgFile = join(broken, 'sasrec', 'config.json');
    writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(readFileSync(cfgFile, 'utf8')), numItems: 1e9 }));
    await expect(call('POST', '/v1/versions', { folder: 'broken-retriever', trainedUpTo: 'latest' }), `body.folder: ${cfgFile}: field "numItems": must be an integer in [1, 16777216], got 1000000000`);
    assert.equal((await call('GET', '/healthz')).body.activeVersion, 1, 'nothing registered, version 1 still serves');
  });

  it("an activation reloads the workers: the next request has the new version's scores", async () => {
    const libA = await library(folderA);
    const libB = await library(folderB);
    const ask = async () => ({
      given: await call('POST', '/v1/recommendations', { user: 'u3', k: 8, candidates: CANDIDATES }),
      full: await call('GET', `/v1/users/u3/recommendations?k=${DEPTH}`),
    });
    const registered = await call('POST', '/v1/versions', { folder: 'b', trainedUpTo: 'latest' });
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    const v2 = registered.body.id;
    let r = await ask();
    assert.equal(r.given.body.version, 1, 'registered, not active: version 1 still serves');
    near(ranked(r.given), libA.given('u3', CANDIDATES), 'version 1, given');
    assert.equal((await call('POST', `/v1/versions/${v2}/activate`)).status, 200);
    r = await ask();
    assert.equal(r.given.body.version, v2);
    assert.equal(r.full.body.version, v2);
    near(ranked(r.given), libB.given('u3', CANDIDATES), 'version 2, given');
    near(ranked(r.full), await libB.full('u3'), 'version 2, two-stage');
    const a = libA.given('u3', CANDIDATES);
    assert.ok(ranked(r.given).some((x) => Math.abs(x.score - a.find((y) => y.id === x.id)!.score) > 1e-3), "version 2's scores are not version 1's");
    assert.equal((await call('POST', '/v1/versions/rollback')).status, 200);
    near(ranked(await call('POST', '/v1/recommendations', { user: 'u3', k: 8, candidates: CANDIDATES })), a, 'rolled back to version 1');
  });
});
