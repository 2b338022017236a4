/**
 * The service against a real SQLite file and a real HTTP server on 127.0.0.1 (ephemeral ports), with a
 * randomly initialised `tiny` LLMRec: ingest, recommend, evolve, activate, roll back, restart; kills in
 * the middle of an evolution; bad input of every kind.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../data/test-utils/tmp.js';
import { loadLLMRec } from '../models/llmrec-io.js';
import { createService, type Service } from './server.js';
import { ITEMS, NAMES, interactions, startServe, tinyLLMRecFolder, type ServeProcess } from './test-utils/fixture.js';

const TOKEN = 'test-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const FAST = { epochs: 1, lr: 3e-3, sasrecEpochs: 1, batchSize: 8 };

interface Reply {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

function client(base: string) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = AUTH): Promise<Reply> => {
    const init: RequestInit = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] = 'application/json';
    }
    const r = await fetch(base + path, init);
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
}

const spawned: ServeProcess[] = [];
async function serve(args: string[]): Promise<ServeProcess> {
  const s = await startServe(args);
  spawned.push(s);
  return s;
}
after(() => {
  for (const s of spawned) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const x = await f();
    if (x !== undefined) return x;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Catalogue, a base log of 30 users x 5, and a version registered as trained on it. */
async function seedBase(call: ReturnType<typeof client>, model: string): Promise<number> {
  assert.equal((await call('PUT', '/v1/items', { items: ITEMS })).status, 200);
  const r = await call('POST', '/v1/interactions', { interactions: interactions('base', 30, 5) });
  assert.equal(r.status, 200);
  assert.equal(r.body.created, 150);
  const v = await call('POST', '/v1/versions', { folder: model, trainedUpTo: 'latest', activate: true });
  assert.equal(v.status, 201, JSON.stringify(v.body));
  assert.equal(v.body.status, 'active');
  assert.equal(v.body.trainedUpTo, 150);
  return v.body.id;
}

describe('evorec serve', () => {
  let dir: string;
  let model: string;
  before(async () => {
    dir = tempDir('evorec-serve-');
    model = await tinyLLMRecFolder(dir);
  });

  it('ingests, recommends, evolves, activates, rolls back, and keeps everything across a restart', async () => {
    const db = join(dir, 'life.db');
    let svc = await serve(['--db', db, '--model', model, '--token', TOKEN, '--quiet']);
    let call = client(svc.url);
    const v0 = await seedBase(call, model);

    const given = await call('POST', '/v1/recommendations', { user: 'u1', k: 3, candidates: ['i0', 'i1', 'i2', 'i3', 'i9'] });
    assert.equal(given.status, 200);
    assert.equal(given.body.pool, 'given');
    assert.equal(given.body.items.length, 3);
    assert.equal(given.body.version, v0);
    assert.deepEqual(given.body.history, ['i5', 'i6', 'i7'], "the user's last H = 3 items");
    const s = given.body.items.map((x: { score: number }) => x.score);
    assert.ok(s[0] >= s[1] && s[1] >= s[2], 'sorted by score');
    const pool = await call('GET', '/v1/users/u1/recommendations?k=4');
    assert.equal(pool.status, 200);
    assert.equal(pool.body.pool, 'popular-unseen');
    assert.equal(pool.body.items.length, 4);
    for (const it of pool.body.items) assert.ok(!['i3', 'i4', 'i5', 'i6', 'i7'].includes(it.id), `${it.id} was seen by u1`);

    // New interactions, then an evolution over them.
    assert.equal((await call('POST', '/v1/interactions', { interactions: interactions('new', 30, 3, 5) })).body.created, 90);
    const evolve = async (gateMargin: number) => {
      const started = await call('POST', '/v1/evolutions', { ...FAST, gateMargin });
      assert.equal(started.status, 202, JSON.stringify(started.body));
      assert.equal(started.body.fromSeq, 150);
      assert.equal(started.body.toSeq, 240);
      assert.equal((await call('POST', '/v1/evolutions', FAST)).status, 409, 'one evolution at a time');
      return until('the evolution', async () => {
        const e = await call('GET', `/v1/evolutions/${started.body.id}`);
        return e.body.status === 'running' ? undefined : e.body;
      });
    };
    // A gate no version can pass (at least 1 NDCG@3 better): registered as rejected, the active one stays.
    const rejected = await evolve(-1);
    assert.equal(rejected.status, 'rejected', rejected.message);
    assert.match(rejected.message, /^gate failed: NDCG@3 [\d.]+ vs active [\d.]+ \(margin -1\)/);
    assert.equal((await call('GET', `/v1/versions/${rejected.newVersionId}`)).body.status, 'rejected');
    assert.equal((await call('GET', '/healthz')).body.activeVersion, v0);
    // A gate every version passes.
    const done = await evolve(1);
    assert.equal(done.status, 'succeeded', done.message);
    const v1 = done.newVersionId as number;
    const nv = (await call('GET', `/v1/versions/${v1}`)).body;
    assert.equal(nv.status, 'active');
    assert.equal(nv.parentId, v0);
    assert.equal(nv.trainedUpTo, 240);
    assert.equal(nv.metrics.gate.passed, true);
    assert.ok(existsSync(join(nv.folder, 'adapter', 'adapter_model.safetensors')));
    const manifest = (f: string) => JSON.parse(readFileSync(join(f, 'llmrec.json'), 'utf8'));
    assert.deepEqual(manifest(nv.folder).scoring, manifest(model).scoring, "the evolved version keeps its parent's scoring settings");
    assert.equal((await call('POST', '/v1/recommendations', { user: 'u1', k: 2 })).body.version, v1, 'the evolved version serves');
    assert.equal((await call('POST', '/v1/evolutions', FAST)).status, 409, 'no new interactions since the cut-off');

    // Roll back, then activate the evolved version again.
    const rb = await call('POST', '/v1/versions/rollback');
    assert.equal(rb.status, 200);
    assert.equal(rb.body.id, v0);
    assert.equal((await call('GET', '/healthz', undefined, {})).body.activeVersion, v0);
    assert.equal((await call('POST', `/v1/versions/${v1}/activate`)).body.status, 'active');
    assert.equal((await call('POST', '/v1/recommendations', { user: 'u2' })).body.version, v1);

    const versions = (await call('GET', '/v1/versions')).body;
    const metrics = (await call('GET', '/metrics')).body;
    assert.equal(metrics.interactions, 240);
    assert.equal(metrics.activeVersion, v1);
    assert.ok(metrics.routes['POST /v1/recommendations'].count >= 3);
    assert.ok(metrics.routes['POST /v1/recommendations'].latencyMs.p99 > 0);

    // Restart (without --model): the log and the registry are intact, the same version serves.
    svc.proc.kill('SIGTERM');
    assert.equal(await svc.exited, 0);
    svc = await serve(['--db', db, '--token', TOKEN, '--quiet']);
    call = client(svc.url);
    assert.deepEqual((await call('GET', '/v1/versions')).body, versions);
    const m2 = (await call('GET', '/metrics')).body;
    assert.equal(m2.interactions, 240);
    assert.equal(m2.lastSeq, 240);
    assert.equal(m2.activeVersion, v1);
    const again = await call('POST', '/v1/interactions', { interactions: interactions('new', 30, 3, 5) });
    assert.equal(again.body.duplicates, 90, 'ids stored before the restart are recognised');
    assert.equal(again.body.created, 0);
    svc.proc.kill('SIGTERM');
    await svc.exited;
  });

  it('keeps the previous model active when the evolution process is killed', async () => {
    const db = join(dir, 'killchild.db');
    const svc = await serve(['--db', db, '--model', model, '--token', TOKEN, '--quiet']);
    const call = client(svc.url);
    try {
      const v0 = await seedBase(call, model);
      await call('POST', '/v1/interactions', { interactions: interactions('new', 30, 3, 5) });
      const e = (await call('POST', '/v1/evolutions', { ...FAST, epochs: 100, batchSize: 1, sasrecEpochs: 200 })).body;
      // Kill it once it is at work (past its start-up).
      const pid = await until('the job at work', async () => {
        const x = (await call('GET', `/v1/evolutions/${e.id}`)).body;
        return x.status === 'running' && x.pid && x.progress.stage !== 'starting' ? (x.pid as number) : undefined;
      });
      process.kill(pid, 'SIGKILL');
      const failed = await until('the failure', async () => {
        const x = (await call('GET', `/v1/evolutions/${e.id}`)).body;
        return x.status === 'running' ? undefined : x;
      });
      assert.equal(failed.status, 'failed');
      assert.match(failed.message, /signal SIGKILL/);
      assert.equal(failed.newVersionId, null);
      assert.equal((await call('GET', '/healthz')).body.activeVersion, v0);
      assert.equal((await call('GET', '/metrics')).body.interactions, 240);
      assert.equal((await call('POST', '/v1/recommendations', { user: 'u3', k: 2 })).status, 200);
      assert.deepEqual(readdirSync(`${db}.versions`), [], 'no half-written version');
    } finally {
      svc.proc.kill('SIGTERM');
      await svc.exited;
    }
  });

  it('keeps the previous model active, and every interaction, when the service is killed mid-evolution', async () => {
    const db = join(dir, 'killsvc.db');
    let svc = await serve(['--db', db, '--model', model, '--token', TOKEN, '--quiet']);
    let call = client(svc.url);
    const v0 = await seedBase(call, model);
    await call('POST', '/v1/interactions', { interactions: interactions('new', 30, 3, 5) });
    const e = (await call('POST', '/v1/evolutions', { ...FAST, epochs: 100, batchSize: 1, sasrecEpochs: 200 })).body;
    const pid = await until('the job at work', async () => {
      const x = (await call('GET', `/v1/evolutions/${e.id}`)).body;
      return x.status === 'running' && x.pid && x.progress.stage !== 'starting' ? (x.pid as number) : undefined;
    });
    svc.proc.kill('SIGKILL');
    await svc.exited;
    await until('the orphaned job to stop', async () => (alive(pid) ? undefined : true), 10_000);

    svc = await serve(['--db', db, '--model', model, '--token', TOKEN, '--quiet']);
    call = client(svc.url);
    try {
      const x = (await call('GET', `/v1/evolutions/${e.id}`)).body;
      assert.equal(x.status, 'interrupted');
      assert.equal((await call('GET', '/healthz')).body.activeVersion, v0);
      const m = (await call('GET', '/metrics')).body;
      assert.equal(m.interactions, 240);
      assert.equal(m.lastSeq, 240);
      assert.deepEqual(readdirSync(`${db}.versions`), []);
      assert.equal((await call('GET', '/v1/versions')).body.length, 2, 'the registry as it was');
      assert.equal((await call('POST', '/v1/recommendations', { user: 'u3', k: 2 })).status, 200);
    } finally {
      svc.proc.kill('SIGTERM');
      await svc.exited;
    }
  });

  it("serves with the folder's scoring settings: the same scores and ranking as the library's LLMRec.score", async () => {
    const folder = await tinyLLMRecFolder(dir, 'tiny', { name: 'calibration-none', scoring: { reduction: 'mean', calibration: 'none' } });
    const service = await createService({ db: join(dir, 'scoring.db'), model: folder, token: TOKEN });
    try {
      const call = client(await service.app.listen({ host: '127.0.0.1', port: 0 }));
      await call('PUT', '/v1/items', { items: ITEMS });
      await call('POST', '/v1/interactions', { interactions: [2, 7, 11].map((k, j) => ({ id: `s${j}`, user: 'u0', item: `i${k}`, timestamp: 1_700_000_000 + j })) });
      const candidates = ITEMS.map((it) => it.id).filter((id) => !['i2', 'i7', 'i11'].includes(id));
      const r = await call('POST', '/v1/recommendations', { user: 'u0', k: candidates.length, candidates });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const { model } = await loadLLMRec(folder, NAMES);
      assert.deepEqual(model.scoring, { reduction: 'mean', calibration: 'none' });
      const idx = (id: string) => Number(id.slice(1));
      const library = model.score([[2, 7, 11]], [candidates.map(idx)])[0];
      const served = new Map<string, number>(r.body.items.map((x: { id: string; score: number }) => [x.id, x.score]));
      for (const [j, id] of candidates.entries()) assert.ok(Math.abs(served.get(id)! - library[j]) < 1e-5, `${id}: served ${served.get(id)}, library ${library[j]}`);
      const order = candidates.map((_, j) => j).sort((a, b) => library[b] - library[a] || a - b).map((j) => candidates[j]);
      assert.deepEqual(r.body.items.map((x: { id: string }) => x.id), order, "the library's ranking");
      // The default calibration ranks otherwise: the check above tells the two apart.
      const prior = model.score([[2, 7, 11]], [candidates.map(idx)], { calibration: 'prior' })[0];
      assert.ok(candidates.some((id, j) => Math.abs(served.get(id)! - prior[j]) > 1e-3), 'served scores are not the prior-calibrated ones');
    } finally {
      await service.close();
    }
  });

  describe('bad input', () => {
    let service: Service;
    let call: ReturnType<typeof client>;
    before(async () => {
      service = await createService({ db: join(dir, 'bad.db'), model, token: TOKEN, bodyLimit: 4096, maxBatch: 50 });
      const url = await service.app.listen({ host: '127.0.0.1', port: 0 });
      call = client(url);
      await call('PUT', '/v1/items', { items: ITEMS });
      await call('POST', '/v1/interactions', { interactions: interactions('base', 5, 3) });
    });
    after(async () => service.close());

    const expect = (r: Reply, status: number, message: RegExp) => {
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(r.body.statusCode, status);
      assert.match(r.body.error, message);
    };

    it('malformed JSON', async () => {
      expect(await call('POST', '/v1/interactions', '{"interactions": [{"id": '), 400, /^body is not valid JSON/);
      expect(await call('POST', '/v1/recommendations', 'not json'), 400, /^body is not valid JSON/);
    });

    it('unknown user and unknown items', async () => {
      expect(await call('POST', '/v1/recommendations', { user: 'nobody' }), 404, /^unknown user "nobody"/);
      expect(await call('GET', '/v1/users/nobody/recommendations'), 404, /^unknown user "nobody"/);
      expect(await call('POST', '/v1/interactions', { interactions: [{ id: 'z1', user: 'u0', item: 'i1' }, { id: 'z2', user: 'u0', item: 'nope' }] }), 400, /^body\.interactions\.1\.item: unknown item "nope"/);
      expect(await call('POST', '/v1/recommendations', { user: 'u0', candidates: ['i1', 'zz'] }), 400, /^body\.candidates: unknown item "zz"/);
      expect(await call('GET', '/v1/items/nope'), 404, /unknown item "nope"/);
      expect(await call('GET', '/v1/versions/99'), 404, /no version 99/);
      expect(await call('GET', '/v1/nothing'), 404, /no route GET \/v1\/nothing/);
      assert.equal((await call('GET', '/metrics')).body.interactions, 15, 'the refused batch stored nothing');
    });

    it('wrong types and shapes', async () => {
      expect(await call('POST', '/v1/interactions', { interactions: [{ id: 'w1', user: 7, item: 'i1' }] }), 400, /^body\.interactions\.0\.user must be string/);
      expect(await call('POST', '/v1/interactions', { interactions: [{ id: 'w1', user: 'u0', item: 'i1', timestamp: 'yesterday' }] }), 400, /^body\.interactions\.0\.timestamp must be number/);
      expect(await call('POST', '/v1/interactions', { interactions: [{ id: 'w1', user: 'u0', item: 'i1', rating: 5 }] }), 400, /must NOT have additional properties \("rating"\)/);
      expect(await call('POST', '/v1/interactions', { interactions: [] }), 400, /must NOT have fewer than 1 items/);
      expect(await call('POST', '/v1/interactions', [1, 2]), 400, /^body must be object/);
      expect(await call('POST', '/v1/recommendations', { user: 'u0', k: 0 }), 400, /^body\.k must be >= 1/);
      expect(await call('POST', '/v1/recommendations', { user: 'u0', k: '3' }), 400, /^body\.k must be integer/);
      expect(await call('GET', '/v1/users/u0/recommendations?k=abc'), 400, /^querystring\.k must match pattern/);
      expect(await call('PUT', '/v1/items', { items: [{ id: 'x', title: '   ' }] }), 400, /title is blank/);
      expect(await call('POST', '/v1/evolutions', { epochs: -1 }), 400, /^body\.epochs must be >= 1/);
      expect(await call('POST', '/v1/versions', { folder: join(dir, 'missing'), trainedUpTo: 'latest' }), 400, /^body\.folder: .*not found/);
      expect(await call('POST', '/v1/versions', { folder: model, trainedUpTo: 10_000 }), 400, /past the end of the log/);
    });

    it('oversized body and batch', async () => {
      const big = { interactions: Array.from({ length: 200 }, (_, k) => ({ id: `big-${k}`, user: 'u0', item: 'i1' })) };
      expect(await call('POST', '/v1/interactions', big), 413, /body is too large/i);
      const many = { interactions: Array.from({ length: 51 }, (_, k) => ({ id: `m${k}`, user: 'u', item: 'i1' })) };
      expect(await call('POST', '/v1/interactions', many), 400, /must NOT have more than 50 items/);
    });

    it('missing or wrong token; reads are closed unless opened', async () => {
      expect(await call('POST', '/v1/interactions', { interactions: [{ id: 't1', user: 'u0', item: 'i1' }] }, {}), 401, /^missing bearer token/);
      expect(await call('PUT', '/v1/items', { items: ITEMS }, { authorization: 'Bearer wrong' }), 401, /^invalid bearer token/);
      expect(await call('POST', '/v1/recommendations', { user: 'u0' }, {}), 401, /^missing bearer token/);
      expect(await call('POST', '/v1/versions/rollback', undefined, {}), 401, /^missing bearer token/);
      assert.equal((await call('GET', '/healthz', undefined, {})).status, 200);
      const open = await createService({ db: join(dir, 'bad.db'), token: TOKEN, openReads: true });
      try {
        const c = client(await open.app.listen({ host: '127.0.0.1', port: 0 }));
        assert.equal((await c('POST', '/v1/recommendations', { user: 'u0', k: 2 }, {})).status, 200);
        assert.equal((await c('GET', '/v1/versions', undefined, {})).status, 200);
        expect(await c('POST', '/v1/evolutions', {}, {}), 401, /^missing bearer token/);
      } finally {
        await open.close();
      }
    });

    it('duplicate interaction ids: acknowledged once stored, refused when reused for other content', async () => {
      const batch = { interactions: [{ id: 'd1', user: 'u0', item: 'i2' }, { id: 'd2', user: 'u0', item: 'i3' }, { id: 'd1', user: 'u0', item: 'i2' }] };
      const r1 = await call('POST', '/v1/interactions', batch);
      assert.equal(r1.status, 200);
      assert.deepEqual(r1.body.results.map((x: { status: string }) => x.status), ['created', 'created', 'duplicate']);
      const r2 = await call('POST', '/v1/interactions', batch);
      assert.equal(r2.body.created, 0);
      assert.equal(r2.body.duplicates, 3);
      assert.deepEqual(r2.body.results.map((x: { seq: number }) => x.seq), r1.body.results.map((x: { seq: number }) => x.seq));
      expect(await call('POST', '/v1/interactions', { interactions: [{ id: 'd1', user: 'u0', item: 'i9' }] }), 409, /^interaction id "d1" was already used for user "u0" and item "i2"/);
      expect(await call('POST', '/v1/evolutions', {}), 409, /not trained on the log/);
      expect(await call('POST', '/v1/versions/rollback'), 409, /no earlier version/);
    });

    it('serves an OpenAPI document of every route', async () => {
      const doc = (await call('GET', '/openapi.json', undefined, {})).body;
      assert.match(doc.openapi, /^3\./);
      for (const p of ['/v1/interactions', '/v1/items', '/v1/recommendations', '/v1/users/{user}/recommendations', '/v1/evolutions', '/v1/evolutions/{id}', '/v1/versions', '/v1/versions/{id}/activate', '/v1/versions/rollback', '/healthz', '/metrics']) {
        assert.ok(doc.paths[p], p);
      }
      assert.ok(doc.paths['/v1/interactions'].post.requestBody.content['application/json'].schema.properties.interactions);
    });
  });
});
