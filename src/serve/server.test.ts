/**
 * The service against a real SQLite file and a real HTTP server on 127.0.0.1 (ephemeral ports), with a
 * randomly initialised `tiny` LLMRec: ingest, recommend, evolve, activate, roll back, restart; kills in
 * the middle of an evolution; bad input of every kind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../data/test-utils/tmp.js';
import { loadLLMRec } from '../models/llmrec-io.js';
import { commandLine, WORKER_FLAG, workerArgs } from './lifetime.js';
import { SqliteStorage } from './sqlite-storage.js';
import { createService, type Service } from './server.js';
import { ITEMS, NAMES, interactions, startServe, tinyLLMRecFolder, type ServeProcess } from './test-utils/fixture.js';

const TOKEN = 'test-token-0123456789';
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
async function serve(args: string[], env?: NodeJS.ProcessEnv): Promise<ServeProcess> {
  const s = await startServe(args, env);
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

/** Is the process alive (a zombie, dead but not yet reaped by whoever adopted it, is not)? */
const alive = (pid: number) => commandLine(pid) !== null;

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
    let svc = await serve(['--db', db, '--model', model, '--token', TOKEN, '--models-root', dir, '--quiet']);
    let call = client(svc.url);
    const v0 = await seedBase(call, model);

    const given = await call('POST', '/v1/recommendations', { user: 'u1', k: 3, candidates: ['i0', 'i1', 'i2', 'i3', 'i9'] });
    assert.equal(given.status, 200);
    assert.equal(given.body.source, 'given');
    assert.equal(given.body.items.length, 3);
    assert.equal(given.body.version, v0);
    assert.deepEqual(given.body.history, ['i5', 'i6', 'i7'], "the user's last H = 3 items");
    const s = given.body.items.map((x: { score: number }) => x.score);
    assert.ok(s[0] >= s[1] && s[1] >= s[2], 'sorted by score');
    const pool = await call('GET', '/v1/users/u1/recommendations?k=4');
    assert.equal(pool.status, 200);
    assert.equal(pool.body.source, 'popular-unseen', 'a version without a retriever ranks the popular unseen items');
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
    // Per user group: every user of the new period has base interactions, so one group, the whole slice.
    const { groups, samples, before: gateBefore, after: gateAfter } = nv.metrics.gate;
    assert.deepEqual(groups, { active: { before: gateBefore, after: gateAfter, samples } });
    assert.ok(existsSync(join(nv.folder, 'adapter', 'adapter_model.safetensors')));
    const manifest = (f: string) => JSON.parse(readFileSync(join(f, 'llmrec.json'), 'utf8'));
    assert.deepEqual(manifest(nv.folder).scoring, manifest(model).scoring, "the evolved version keeps its parent's scoring settings");
    assert.equal((await call('POST', '/v1/recommendations', { user: 'u1', k: 2 })).body.version, v1, 'the evolved version serves');
    // The evolution's SASRec (its Forget filter) is the evolved version's retriever: full-catalogue recommendations.
    assert.ok(existsSync(join(nv.folder, 'sasrec', 'config.json')), 'the evolved version carries its SASRec');
    const full = await call('GET', '/v1/users/u1/recommendations?k=4');
    assert.equal(full.body.source, 'two-stage');
    assert.equal(full.body.items.length, 4);
    const seenByU1 = (await call('POST', '/v1/recommendations', { user: 'u1', k: 1, candidates: ['i0'] })).body.history;
    for (const it of full.body.items) assert.ok(!seenByU1.includes(it.id), `${it.id} was seen by u1`);
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
    svc = await serve(['--db', db, '--token', TOKEN, '--models-root', dir, '--quiet']);
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
    const svc = await serve(['--db', db, '--model', model, '--token', TOKEN, '--models-root', dir, '--quiet']);
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

  it('keeps the previous model active, and every interaction, when the service is killed mid-evolution; the job dies with it and never sees the tokens', async () => {
    const db = join(dir, 'killsvc.db');
    // The `small` preset: its job computes for about 15 s after the kill, long enough to tell an orphan from a job that ended.
    const small = await tinyLLMRecFolder(dir, 'small', { name: 'small' });
    const READ = 'read-token-0123456789';
    const env = { ...process.env, EVOREC_TOKEN: TOKEN, EVOREC_READ_TOKEN: READ };
    let svc = await serve(['--db', db, '--model', small, '--models-root', dir, '--quiet'], env);
    let call = client(svc.url);
    const v0 = await seedBase(call, small);
    await call('POST', '/v1/interactions', { interactions: interactions('new', 30, 3, 5) });
    const e = (await call('POST', '/v1/evolutions', { ...FAST, epochs: 100, batchSize: 1, sasrecEpochs: 200 })).body;
    // Killed while it computes (SASRec, then the update: minutes of synchronous work on a real model).
    const pid = await until('the job at work', async () => {
      const x = (await call('GET', `/v1/evolutions/${e.id}`)).body;
      return x.status === 'running' && x.pid && ['train SASRec', 'EvoRec update'].includes(x.progress.stage) ? (x.pid as number) : undefined;
    });
    if (process.platform === 'linux') {
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      assert.ok(environ.some((kv) => kv.startsWith('PATH=')), 'the rest of the environment is passed');
      assert.ok(!environ.some((kv) => /^EVOREC_(READ_)?TOKEN=/.test(kv) || kv.includes(TOKEN) || kv.includes(READ)), 'no token in the evolution child');
    }
    assert.equal((await call('GET', '/v1/versions', undefined, { authorization: `Bearer ${READ}` })).status, 200, "the service's read token from the environment");
    svc.proc.kill('SIGKILL');
    await svc.exited;
    const t0 = Date.now();
    await until('the orphaned job to stop', async () => (alive(pid) ? undefined : true), 3_000);
    assert.ok(Date.now() - t0 < 3_000);

    svc = await serve(['--db', db, '--models-root', dir, '--quiet'], env);
    call = client(svc.url);
    try {
      const x = (await call('GET', `/v1/evolutions/${e.id}`)).body;
      assert.equal(x.status, 'interrupted');
      assert.match(x.message, /^the service stopped during the evolution; the active model was kept$/, 'nothing was left to stop');
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

  it('a restart stops a job process that outlived the service, and never a process that is not the job', async () => {
    const db = join(dir, 'survivor.db');
    await (await createService({ db, model, token: TOKEN, modelsRoot: dir })).close();
    const storage = new SqliteStorage(db);
    await storage.migrate();
    const v = (await storage.activeVersion())!;
    const job = await storage.startEvolution({ baseVersionId: v.id, fromSeq: 0, toSeq: 0, options: {} });
    const other = await storage.startEvolution({ baseVersionId: v.id, fromSeq: 0, toSeq: 0, options: {} });
    // A job that outlived its service (as one did before the watchdog), and a process that only looks like one.
    const idle = (args: string[]) => spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '--', ...args], { stdio: 'ignore' });
    const survivor = idle(workerArgs(1, job.id, resolve(db)));
    const bystander = idle([WORKER_FLAG, `--job=${other.id}`, `--db=${join(dir, 'another.db')}`]);
    const ended = new Promise<string | null>((r) => survivor.on('exit', (_code, signal) => r(signal)));
    try {
      await until('the processes to start', async () => ([survivor.pid!, bystander.pid!].every((pid) => commandLine(pid)?.includes(WORKER_FLAG)) ? true : undefined));
      await storage.updateEvolution(job.id, { pid: survivor.pid! });
      await storage.updateEvolution(other.id, { pid: bystander.pid! });
      await storage.close();
      const svc = await createService({ db, token: TOKEN, modelsRoot: dir });
      try {
        assert.equal(await Promise.race([ended, sleep(5000).then(() => 'still running 5 s after the restart')]), 'SIGKILL');
        const e = (await svc.storage.evolution(job.id))!;
        assert.equal(e.status, 'interrupted');
        assert.match(e.message!, new RegExp(`^the service stopped during the evolution \\(its process ${survivor.pid} was still running and has been stopped\\)`));
        const o = (await svc.storage.evolution(other.id))!;
        assert.equal(o.status, 'interrupted');
        assert.match(o.message!, /^the service stopped during the evolution; the active model was kept$/);
        assert.ok(alive(bystander.pid!), "a process that is not the job's is left alone");
      } finally {
        await svc.close();
      }
    } finally {
      survivor.kill('SIGKILL');
      bystander.kill('SIGKILL');
    }
  });

  it('tokens: several, with read and write scopes, at least 16 characters', async () => {
    const W2 = 'second-write-token-abcdefghij';
    const R = 'read-only-token-0123456789';
    const service = await createService({ db: join(dir, 'tokens.db'), model, modelsRoot: dir, tokens: [{ token: TOKEN, scope: 'write' }, { token: W2, scope: 'write' }, { token: R, scope: 'read' }] });
    try {
      const call = client(await service.app.listen({ host: '127.0.0.1', port: 0 }));
      const as = (t: string) => ({ authorization: `Bearer ${t}` });
      assert.equal((await call('PUT', '/v1/items', { items: ITEMS }, as(W2))).status, 200, 'the second write token writes');
      assert.equal((await call('POST', '/v1/interactions', { interactions: interactions('t', 2, 3) }, as(TOKEN))).status, 200);
      assert.equal((await call('GET', '/v1/versions', undefined, as(R))).status, 200, 'the read token reads');
      assert.equal((await call('POST', '/v1/recommendations', { user: 'u0', k: 2 }, as(R))).status, 200);
      assert.equal((await call('GET', '/metrics', undefined, as(W2))).status, 200, 'a write token reads too');
      const denied = await call('PUT', '/v1/items', { items: ITEMS }, as(R));
      assert.equal(denied.status, 403);
      assert.match(denied.body.error, /^this token has read scope: this route needs a write token/);
      assert.equal((await call('POST', '/v1/versions/rollback', undefined, as(R))).status, 403);
      for (const wrong of ['x', R.slice(0, -1), TOKEN + 'x', 'y'.repeat(500)]) assert.equal((await call('GET', '/v1/versions', undefined, as(wrong))).status, 401, `${wrong.length} characters`);
    } finally {
      await service.close();
    }
    await assert.rejects(createService({ db: join(dir, 'tokens.db'), token: 'x', modelsRoot: dir }), /the write token 1 has 1 characters; a token needs at least 16/);
    await assert.rejects(serve(['--db', join(dir, 'tokens.db'), '--token', 'short', '--models-root', dir]), /serve exited with 1: evorec: serve: the write token 1 has 5 characters; a token needs at least 16/);
  });

  it("serves with the folder's scoring settings: the same scores and ranking as the library's LLMRec.score", async () => {
    const folder = await tinyLLMRecFolder(dir, 'tiny', { name: 'calibration-none', scoring: { reduction: 'mean', calibration: 'none' } });
    const service = await createService({ db: join(dir, 'scoring.db'), model: folder, token: TOKEN, modelsRoot: dir });
    try {
      const call = client(await service.app.listen({ host: '127.0.0.1', port: 0 }));
      await call('PUT', '/v1/items', { items: ITEMS });
      await call('POST', '/v1/interactions', { interactions: [2, 7, 11].map((k, j) => ({ id: `s${j}`, user: 'u0', item: `i${k}`, timestamp: 1_700_000_000 + j })) });
      const candidates = ITEMS.map((it) => it.id).filter((id) => !['i2', 'i7', 'i11'].includes(id));
      const r = await call('POST', '/v1/recommendations', { user: 'u0', k: candidates.length, candidates });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const { model } = await loadLLMRec(folder, NAMES);
      assert.deepEqual(model.scoring, { reduction: 'mean', calibration: 'none', priorWeight: 1 }, "the folder's settings (priorWeight the default)");
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
      service = await createService({ db: join(dir, 'bad.db'), model, token: TOKEN, modelsRoot: dir, bodyLimit: 4096, maxBatch: 50 });
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

    it('unknown items (an unknown user is a cold start: recommend.test.ts)', async () => {
      expect(await call('POST', '/v1/interactions', { interactions: [{ id: 'z1', user: 'u0', item: 'i1' }, { id: 'z2', user: 'u0', item: 'nope' }] }), 400, /^body\.interactions\.1\.item: unknown item "nope"/);
      expect(await call('POST', '/v1/recommendations', { user: 'u0', candidates: ['i1', 'zz'] }), 400, /^body\.candidates: unknown item "zz"/);
      expect(await call('POST', '/v1/recommendations', { user: 'nobody', candidates: ['zz'] }), 400, /^body\.candidates: unknown item "zz"/);
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

    it('version folders: inside the models root, symlinks resolved, relative to it', async () => {
      const outside = tempDir('evorec-outside-');
      cpSync(model, join(outside, 'llmrec'), { recursive: true });
      writeFileSync(join(outside, 'secret.txt'), 'root:x:0:0:root:/root:/bin/bash\n');
      // The review's path, and an absolute one outside the root.
      expect(await call('POST', '/v1/versions', { folder: '../../../../../tmp/a/../b', trainedUpTo: 'latest' }), 400, /^body\.folder: \/tmp\/b is outside the models root .* \(--models-root; symlinks resolved\)$/);
      const dotted = `../../../../../../../..${outside}/a/../llmrec`;
      assert.equal(resolve(dir, dotted), join(outside, 'llmrec'), 'a path out of the root to a model folder');
      expect(await call('POST', '/v1/versions', { folder: dotted, trainedUpTo: 'latest' }), 400, /^body\.folder: .*llmrec is outside the models root/);
      expect(await call('POST', '/v1/versions', { folder: join(outside, 'llmrec'), trainedUpTo: 'latest' }), 400, /^body\.folder: .*llmrec is outside the models root .*\(--models-root; symlinks resolved\)/);
      // A link inside the root to a folder outside.
      symlinkSync(join(outside, 'llmrec'), join(dir, 'linked-out'));
      expect(await call('POST', '/v1/versions', { folder: 'linked-out', trainedUpTo: 'latest' }), 400, /^body\.folder: .*linked-out is outside the models root/);
      // A folder inside whose llmrec.json is a link to a file outside (the review's /etc/passwd).
      const f = join(dir, 'leaky');
      cpSync(model, f, { recursive: true });
      rmSync(join(f, 'llmrec.json'));
      symlinkSync(join(outside, 'secret.txt'), join(f, 'llmrec.json'));
      const leak = await call('POST', '/v1/versions', { folder: 'leaky', trainedUpTo: 'latest' });
      expect(leak, 400, /^body\.folder: .*leaky\/llmrec\.json is a link to a file outside the models root/);
      assert.doesNotMatch(leak.body.error, /root:x/);
      // Inside the root but not JSON: the file and the position, not the text.
      rmSync(join(f, 'llmrec.json'));
      writeFileSync(join(f, 'llmrec.json'), 'root:x:0:0:root:/root:/bin/bash\n');
      const bad = await call('POST', '/v1/versions', { folder: 'leaky', trainedUpTo: 'latest' });
      expect(bad, 400, /^body\.folder: .*leaky\/llmrec\.json: invalid JSON at line 1, column 1$/);
      assert.doesNotMatch(bad.body.error, /root:x/);
      // A manifest whose adapter points outside the folder.
      const m = JSON.parse(readFileSync(join(model, 'llmrec.json'), 'utf8'));
      writeFileSync(join(f, 'llmrec.json'), JSON.stringify({ ...m, adapter: '../llmrec/adapter' }));
      expect(await call('POST', '/v1/versions', { folder: 'leaky', trainedUpTo: 'latest' }), 400, /llmrec\.json: field "adapter": must be a folder inside the LLMRec folder/);
      // A relative folder is relative to the root, and the real path is registered.
      mkdirSync(join(dir, 'models'), { recursive: true });
      symlinkSync(model, join(dir, 'models', 'current'));
      const ok = await call('POST', '/v1/versions', { folder: 'models/current', trainedUpTo: 'latest' });
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
      assert.equal(ok.body.folder, realpathSync(model));
      assert.equal((await call('GET', '/v1/versions')).body.filter((v: { folder: string }) => v.folder !== realpathSync(model)).length, 0, 'only the folder inside the root was registered');
      // The same for --model at the first start.
      await assert.rejects(createService({ db: join(dir, 'outside.db'), model: join(outside, 'llmrec'), token: TOKEN, modelsRoot: dir }), /^RangeError: --model: .*llmrec is outside the models root/);
      await assert.rejects(createService({ db: join(dir, 'outside.db'), model, token: TOKEN, modelsRoot: join(dir, 'nowhere') }), /models root .*nowhere does not exist \(--models-root\)/);
    });

    it('a config.json above the size limits is refused at once (one million layers ran the service out of memory)', async () => {
      const f = join(dir, 'million-layers');
      cpSync(model, f, { recursive: true });
      const cfg = JSON.parse(readFileSync(join(f, 'config.json'), 'utf8'));
      writeFileSync(join(f, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 1_000_000 }));
      const t0 = performance.now();
      expect(await call('POST', '/v1/versions', { folder: f, trainedUpTo: 'latest' }), 400, /^body\.folder: .*million-layers\/config\.json: field "num_hidden_layers": 1000000 is above evorec's limit of 1024/);
      assert.ok(performance.now() - t0 < 2000);
      writeFileSync(join(f, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 1000 }));
      expect(await call('POST', '/v1/versions', { folder: f, trainedUpTo: 'latest' }), 400, /config\.json: field "num_hidden_layers": 1000 layers, but .*model\.safetensors holds weights of 2/);
      assert.equal((await call('GET', '/healthz', undefined, {})).status, 200, 'the service is up');
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
      const open = await createService({ db: join(dir, 'bad.db'), token: TOKEN, modelsRoot: dir, openReads: true });
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
