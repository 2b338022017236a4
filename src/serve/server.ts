/**
 * The recommendation service: a fastify HTTP API over a Storage, the served model (ModelHost) and the
 * evolution jobs. Every route has JSON schemas for its input and output; the OpenAPI document built from
 * them is served at /openapi.json. Write routes need a write token; read routes a read or write token
 * unless `openReads`. Model folders are read only from inside the models root.
 * Input that is wrong answers 4xx with a message naming the field; only a fault of the service is a 500.
 */
import { realpathSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { setThreads } from '../core/index.js';
import { TokenSet, type ScopedToken } from './auth.js';
import { DASHBOARD_HTML, dashboardData } from './dashboard.js';
import { DEFAULT_EVOLVE, type EvolveOptions } from './evolve-worker.js';
import { EvolutionManager, HttpError, versionsDirFor, type GateConfig } from './evolution.js';
import { Metrics } from './metrics.js';
import { ModelHost, type LoadedVersion } from './model-host.js';
import { confineFolder, FolderError, modelsRootPath } from './paths.js';
import { isPostgresUrl, normaliseSpec, openStorage, storageLabel } from './open-storage.js';
import { DEFAULT_SYNC_MS, ReplicaSync } from './replica-sync.js';
import { RecentPopularity } from './recent-popularity.js';
import { PoolBusyError } from './scoring-pool.js';
import { IdConflictError, type Evolution, type ModelVersion, type Storage } from './storage.js';

export interface ServeConfig {
  /**
   * The storage: a SQLite file (created when missing), or a `postgres://` / `postgresql://` URL (several
   * replicas may share one database). A URL's password is never shown (logs, messages, command lines).
   */
  db: string;
  /** Where evolved versions' folders go (default `<db>.versions`; required with a PostgreSQL URL). */
  versionsDir?: string;
  /**
   * How often the replica looks for an activation or a catalogue change made through another process on
   * the same database, in ms (default 2000; 0 = never).
   */
  syncIntervalMs?: number;
  /** LLMRec folder registered (and activated) when the registry is empty (inside the models root). */
  model?: string;
  /**
   * The only place model folders are read from (default: the current directory): a folder given by
   * `model` or by POST /v1/versions must lie inside it, and so must everything in it, symlinks resolved.
   * Relative folders are taken relative to it. Evolved versions go to `versionsDir`, wherever that is.
   */
  modelsRoot?: string;
  /** The initial model was trained on the log up to this seq ('latest' = everything stored now). */
  modelTrainedUpTo?: number | 'latest';
  /** A write token (bearer token of every route); the same as `tokens: [{token, scope: 'write'}]`. */
  token?: string;
  /** Bearer tokens with their scopes: write tokens call every route, read tokens the read routes. */
  tokens?: ScopedToken[];
  openReads?: boolean;
  /** Largest request body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Largest batch of interactions or items (default 1000). */
  maxBatch?: number;
  /** Candidate pool size when the request gives no candidates and the version has no retriever (default 50). */
  poolSize?: number;
  /** Largest candidate list a request may give (default 500). */
  maxCandidates?: number;
  /** Scoring worker threads (default: the cores, os.availableParallelism()). */
  workers?: number;
  /** Native kernel threads, process-wide (default: the cores divided by the workers, at least 1). */
  threads?: number;
  /** Most requests a worker scores in one call (default 8). */
  batch?: number;
  /** Most recommendation requests waiting for a worker; more answer 503 (default 256). */
  maxQueue?: number;
  /** Full-catalogue mode: the retriever's top `depth` items are re-ranked by LLMRec (default 50). */
  depth?: number;
  /** Largest prompt (and answer) a served version may build, in tokens (default 2048). */
  maxPromptTokens?: number;
  /** Cold start: popularity over the last this many interactions of the log (default 10,000). */
  popularityWindow?: number;
  gate?: Partial<GateConfig>;
  /** Start an evolution once this many interactions arrived after the active version's cut-off (0 = off). */
  evolveAfter?: number;
  /** Defaults of evolution jobs. */
  evolve?: Partial<EvolveOptions>;
  log?: (line: string) => void;
  /** fastify's request logger. */
  logger?: boolean;
}

type Access = 'open' | 'read' | 'write';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route: anyone, readers (the token unless reads are open), writers (the token). */
    access?: Access;
  }
}

const ERROR = { type: 'object', properties: { error: { type: 'string' }, statusCode: { type: 'integer' } }, required: ['error', 'statusCode'] } as const;
const ID = { type: 'string', minLength: 1, maxLength: 256 } as const;
const VERSION = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    folder: { type: 'string' },
    parentId: { type: ['integer', 'null'] },
    trainedUpTo: { type: 'integer', description: 'trained on the interaction log up to this seq' },
    metrics: { type: 'object', additionalProperties: true },
    status: { type: 'string', enum: ['active', 'candidate', 'retired', 'rejected'] },
    createdAt: { type: 'string' },
    activatedAt: { type: ['string', 'null'] },
    note: { type: ['string', 'null'] },
  },
} as const;
const EVOLUTION = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    status: { type: 'string', enum: ['running', 'succeeded', 'rejected', 'failed', 'interrupted'] },
    baseVersionId: { type: 'integer' },
    fromSeq: { type: 'integer' },
    toSeq: { type: 'integer' },
    newVersionId: { type: ['integer', 'null'] },
    options: { type: 'object', additionalProperties: true },
    progress: {
      type: 'object',
      properties: { stage: { type: 'string' }, done: { type: 'number' }, total: { type: 'number' }, log: { type: 'array', items: { type: 'string' } } },
    },
    message: { type: ['string', 'null'] },
    pid: { type: ['integer', 'null'] },
    startedAt: { type: 'string' },
    finishedAt: { type: ['string', 'null'] },
  },
} as const;
const RECOMMENDATIONS = {
  type: 'object',
  properties: {
    user: { type: 'string' },
    version: { type: 'integer' },
    source: {
      type: 'string',
      enum: ['given', 'two-stage', 'popular-unseen', 'popularity'],
      description: "given: LLMRec scores of the request's candidates; two-stage: the version's SASRec top `depth` unseen items re-ranked by LLMRec; popular-unseen: popular unseen items re-ranked by LLMRec (a version without a retriever); popularity: a user without interactions, ranked by recent popularity (score = interactions in the window)",
    },
    history: { type: 'array', items: { type: 'string' }, description: "the user's last H items, the prompt's titles (oldest first)" },
    items: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, title: { type: 'string' }, score: { type: 'number' } } } },
  },
} as const;
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ERROR]));
const EVOLVE_OPTIONS = {
  type: 'object',
  additionalProperties: false,
  properties: {
    epochs: { type: 'integer', minimum: 1, maximum: 100 },
    lr: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    batchSize: { type: 'integer', minimum: 1, maximum: 1024 },
    sasrecEpochs: { type: 'integer', minimum: 1, maximum: 200 },
    share: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    forget: { type: 'boolean' },
    forgetRatio: { type: 'number', minimum: 0, maximum: 0.9 },
    candidates: { type: 'integer', minimum: 2, maximum: 200 },
    validUsers: { type: 'integer', minimum: 1, maximum: 100000 },
    seed: { type: 'integer' },
    gateMargin: { type: 'number', minimum: -1, maximum: 1, description: "this job's gate margin (default: the service's)" },
  },
} as const;

/** "body/interactions/0/user must be string" style messages, naming the offending property. */
function formatSchemaErrors(errs: { instancePath: string; message?: string; params?: Record<string, unknown> }[], dataVar: string): Error {
  const e = errs[0];
  const where = `${dataVar}${e.instancePath.replace(/\//g, '.')}`;
  let msg = `${where} ${e.message ?? 'is invalid'}`;
  if (e.params?.additionalProperty) msg += ` ("${String(e.params.additionalProperty)}")`;
  if (Array.isArray(e.params?.allowedValues)) msg += `: ${(e.params!.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(', ')}`;
  return new Error(msg);
}

export interface Service {
  app: FastifyInstance;
  storage: Storage;
  host: ModelHost;
  evolutions: EvolutionManager;
  metrics: Metrics;
  close(): Promise<void>;
}

export async function createService(config: ServeConfig): Promise<Service> {
  const log = config.log ?? (() => {});
  const tokens = new TokenSet([...(config.token !== undefined ? [{ token: config.token, scope: 'write' as const }] : []), ...(config.tokens ?? [])]);
  const modelsRoot = modelsRootPath(config.modelsRoot ?? '.');
  const maxPromptTokens = config.maxPromptTokens ?? 2048;
  const workers = config.workers ?? availableParallelism();
  const threads = config.threads ?? Math.max(1, Math.floor(availableParallelism() / workers));
  const depth = config.depth ?? 50;
  if (!(Number.isInteger(depth) && depth >= 1 && depth <= 1000)) throw new RangeError(`depth must be an integer in [1, 1000], got ${depth}`);
  const db = { spec: normaliseSpec(config.db), label: storageLabel(config.db) };
  if (isPostgresUrl(config.db) && !config.versionsDir) {
    throw new RangeError(`${db.label}: give --versions <dir> with a PostgreSQL database (evolved versions' folders must be where every replica can read them)`);
  }
  const storage = await openStorage(db.spec, { log });
  // The native kernels' threads are one setting for the whole process (every worker).
  setThreads(threads);
  const host = new ModelHost({ workers, batch: config.batch ?? 8, maxQueue: config.maxQueue ?? 256, limits: { maxPromptTokens }, log });
  const sync = new ReplicaSync(storage, host, log);
  const gate: GateConfig = { enabled: config.gate?.enabled ?? true, margin: config.gate?.margin ?? 0.02 };
  const evolutions = new EvolutionManager(storage, host, db, config.versionsDir ?? versionsDirFor(config.db), gate, log);
  const popularity = new RecentPopularity(storage, config.popularityWindow ?? 10_000);
  try {
    await storage.migrate();
    host.setCatalogue(await storage.items());
    await sync.init();
    const active = await activeAtStart(storage, config, modelsRoot, db.label, log);
    await evolutions.recover();
    host.swap(await host.load(active));
    log(`serving version ${active.id} (${active.folder}) from ${db.label} with ${workers} scoring worker${workers > 1 ? 's' : ''} x ${threads} thread${threads > 1 ? 's' : ''}`);
  } catch (e) {
    // A start that fails leaves no connection open (a PostgreSQL pool would keep the process alive), and no
    // scoring worker.
    await host.close();
    await storage.close();
    throw e;
  }
  sync.start(config.syncIntervalMs ?? DEFAULT_SYNC_MS);
  const metrics = new Metrics();
  const maxBatch = config.maxBatch ?? 1000;
  const poolSize = config.poolSize ?? 50;
  const maxCandidates = config.maxCandidates ?? 500;
  const evolveDefaults: Partial<EvolveOptions> = { ...config.evolve };

  const app = Fastify({
    logger: config.logger ?? false,
    bodyLimit: config.bodyLimit ?? 1 << 20,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    schemaErrorFormatter: formatSchemaErrors,
  });
  await app.register(swagger, {
    openapi: {
      info: { title: 'evorec recommendation service', version: '1', description: 'LLMRec recommendations, interaction log, and EvoRec evolution of the model.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  const scopeOf = (req: FastifyRequest) => {
    const m = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '');
    return m ? tokens.scopeOf(m[1]) : null;
  };
  app.addHook('onRequest', async (req, reply) => {
    const access = req.routeOptions.config?.access ?? 'write';
    if (access === 'open' || (access === 'read' && config.openReads)) return;
    const scope = scopeOf(req);
    if (!scope) {
      reply.header('www-authenticate', 'Bearer');
      throw new HttpError(401, req.headers.authorization ? 'invalid bearer token' : 'missing bearer token (Authorization: Bearer <token>)');
    }
    if (access === 'write' && scope !== 'write') {
      reply.header('www-authenticate', 'Bearer error="insufficient_scope", scope="write"');
      throw new HttpError(403, 'this token has read scope: this route needs a write token');
    }
  });
  app.addHook('onResponse', async (req, reply) => {
    metrics.record(`${req.method} ${req.routeOptions.url ?? '(no route)'}`, reply.statusCode, reply.elapsedTime);
  });
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
    let status = err instanceof IdConflictError ? 409 : err instanceof PoolBusyError ? 503 : err.statusCode ?? (err.validation ? 400 : 500);
    if (status === 503) reply.header('retry-after', '1');
    if (!(status >= 400 && status < 600)) status = 500;
    if (status >= 500) {
      log(`${req.method} ${req.url}: ${err.stack ?? err.message}`);
      return reply.code(status).send({ error: 'internal error', statusCode: status });
    }
    let message = err.message;
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) message = `body is not valid JSON: ${err.message}`;
    return reply.code(status).send({ error: message, statusCode: status });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}`, statusCode: 404 }));

  const route = (access: Access) => ({ config: { access } });

  // ---- health, metrics, OpenAPI ----
  app.get('/healthz', { ...route('open'), schema: { tags: ['ops'], summary: 'liveness and the active version', response: { 200: { type: 'object', properties: { status: { type: 'string' }, activeVersion: { type: 'integer' }, evolution: { type: ['integer', 'null'] }, uptimeSeconds: { type: 'number' } } } } } }, async () => ({
    status: 'ok',
    activeVersion: host.current!.version.id,
    evolution: evolutions.current?.id ?? null,
    uptimeSeconds: (Date.now() - metrics.started) / 1000,
  }));
  app.get('/metrics', { ...route('read'), schema: { tags: ['ops'], summary: 'request counts and latencies per route, the active version, the log', response: { 200: { type: 'object', additionalProperties: true } } } }, async () => {
    const { lastSeq, count } = await storage.logState();
    return {
      activeVersion: host.current!.version.id,
      activeTrainedUpTo: host.current!.version.trainedUpTo,
      interactions: count,
      lastSeq,
      users: await storage.userCount(),
      items: (await storage.items()).length,
      evolution: evolutions.current?.id ?? null,
      uptimeSeconds: (Date.now() - metrics.started) / 1000,
      rssMb: Math.round(process.memoryUsage().rss / 2 ** 20),
      scoring: { workers: host.pool.workers, threads, batch: host.pool.options.batch, busy: host.pool.busy, queued: host.pool.queued, batchSizes: Object.fromEntries(host.pool.batchSizes), retriever: host.current!.info.retriever },
      routes: metrics.snapshot(),
    };
  });
  app.get('/openapi.json', { ...route('open'), schema: { hide: true } }, async () => app.swagger());
  // The operator's dashboard (dashboard.ts): the page is open (it holds no data), what it polls is a read route.
  app.get('/dashboard', { ...route('open'), schema: { tags: ['ops'], summary: "the operator's dashboard (HTML; its data comes from GET /v1/dashboard with a read token)" } }, async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-security-policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
      .header('referrer-policy', 'no-referrer')
      .send(DASHBOARD_HTML),
  );
  app.get(
    '/v1/dashboard',
    { ...route('read'), schema: { tags: ['ops'], summary: "everything the dashboard shows: versions with gate scores, evolution jobs with progress, quality over versions, interactions stored per second, latency per route", response: { 200: { type: 'object', additionalProperties: true } } } },
    async () =>
      dashboardData({
        storage,
        metrics,
        activeVersion: host.current!.version.id,
        evolution: evolutions.current?.id ?? null,
        scoring: { workers: host.pool.workers, busy: host.pool.busy, queued: host.pool.queued },
      }),
  );

  // ---- catalogue ----
  app.put<{ Body: { items: { id: string; title: string }[] } }>(
    '/v1/items',
    {
      ...route('write'),
      schema: {
        tags: ['catalogue'],
        summary: 'add or update items (id, title)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['items'],
          properties: { items: { type: 'array', minItems: 1, maxItems: maxBatch, items: { type: 'object', additionalProperties: false, required: ['id', 'title'], properties: { id: ID, title: { type: 'string', minLength: 1, maxLength: 2000 } } } } },
        },
        response: { 200: { type: 'object', properties: { created: { type: 'integer' }, updated: { type: 'integer' }, items: { type: 'integer' } } }, ...errors(400, 401, 403, 413) },
      },
    },
    async (req) => {
      const seen = new Set<string>();
      req.body.items.forEach((it, i) => {
        if (!it.title.trim()) throw new HttpError(400, `body.items.${i}.title is blank`);
        if (seen.has(it.id)) throw new HttpError(400, `body.items.${i}.id: item "${it.id}" appears twice in the batch`);
        seen.add(it.id);
      });
      const r = await storage.upsertItems(req.body.items);
      const all = await storage.items();
      host.setCatalogue(all);
      return { ...r, items: all.length };
    },
  );
  app.get<{ Params: { id: string } }>(
    '/v1/items/:id',
    { ...route('read'), schema: { tags: ['catalogue'], summary: 'one item', params: { type: 'object', properties: { id: ID } }, response: { 200: { type: 'object', properties: { id: { type: 'string' }, title: { type: 'string' } } }, ...errors(404) } } },
    async (req) => {
      const it = (await storage.items()).find((x) => x.id === req.params.id);
      if (!it) throw new HttpError(404, `unknown item "${req.params.id}"`);
      return it;
    },
  );

  // ---- interactions ----
  let autoStarting = false;
  app.post<{ Body: { interactions: { id: string; user: string; item: string; timestamp?: number }[] } }>(
    '/v1/interactions',
    {
      ...route('write'),
      schema: {
        tags: ['interactions'],
        summary: 'append interactions (idempotent by the client id: a repeated id is acknowledged, not stored again)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['interactions'],
          properties: {
            interactions: {
              type: 'array',
              minItems: 1,
              maxItems: maxBatch,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['id', 'user', 'item'],
                properties: { id: { ...ID, description: 'client idempotency id' }, user: ID, item: ID, timestamp: { type: 'number', minimum: 0, description: 'Unix seconds (default: now)' } },
              },
            },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              created: { type: 'integer' },
              duplicates: { type: 'integer' },
              lastSeq: { type: 'integer' },
              results: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, status: { type: 'string', enum: ['created', 'duplicate'] }, seq: { type: 'integer' } } } },
            },
          },
          ...errors(400, 401, 403, 409, 413),
        },
      },
    },
    async (req) => {
      const rows = req.body.interactions;
      const missing = new Set(await storage.missingItems(rows.map((r) => r.item)));
      const bad = rows.findIndex((r) => missing.has(r.item));
      if (bad >= 0) throw new HttpError(400, `body.interactions.${bad}.item: unknown item "${rows[bad].item}" (add it with PUT /v1/items first)`);
      const now = Date.now() / 1000;
      const results = await storage.appendInteractions(rows.map((r) => ({ id: r.id, user: r.user, item: r.item, timestamp: r.timestamp ?? now })));
      const created = results.filter((r) => r.status === 'created').length;
      metrics.recordIngest(created);
      const lastSeq = await storage.lastSeq();
      const threshold = config.evolveAfter ?? 0;
      const active = host.current!.version;
      if (threshold > 0 && !evolutions.current && !autoStarting && active.trainedUpTo > 0 && lastSeq - active.trainedUpTo >= threshold) {
        autoStarting = true;
        evolutions
          .start(evolveDefaults)
          .then((e) => log(`evolution ${e.id} started: ${lastSeq - active.trainedUpTo} new interactions`))
          .catch((err: unknown) => log(`automatic evolution not started: ${String(err)}`))
          .finally(() => (autoStarting = false));
      }
      return { created, duplicates: results.length - created, lastSeq, results };
    },
  );

  // ---- recommendations ----
  type Ranked = { id: string; score: number }[];
  const byScore = (ids: readonly string[], scores: ArrayLike<number>, k: number): Ranked =>
    ids.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b).slice(0, k).map((i) => ({ id: ids[i], score: scores[i] }));
  const recommend = async (user: string, k: number, given: string[] | undefined, where: 'body' | 'querystring') => {
    const cur: LoadedVersion = host.current!;
    const { history: H, retriever } = cur.info;
    if (!given && retriever && k > depth) throw new HttpError(400, `${where}.k: ${k} is above the full-catalogue depth ${depth} (the retriever's items that LLMRec re-ranks; --depth)`);
    let candidates: string[] | undefined;
    if (given) {
      candidates = [...new Set(given)];
      const missing = await storage.missingItems(candidates);
      if (missing.length) throw new HttpError(400, `body.candidates: unknown item${missing.length > 1 ? 's' : ''} ${missing.slice(0, 5).map((m) => `"${m}"`).join(', ')}${missing.length > 5 ? ', ...' : ''}`);
    }
    const recent = (await storage.recentItems(user, Math.max(H, retriever?.maxLen ?? 0))) ?? [];
    const answer = (source: 'given' | 'two-stage' | 'popular-unseen' | 'popularity', ranked: Ranked) => ({
      user,
      version: cur.version.id,
      source,
      history: recent.slice(-H),
      items: ranked.map((r) => ({ id: r.id, title: host.title(r.id), score: r.score })),
    });
    // Cold start: no interactions to prompt with; recent popularity (of the given candidates, or of the catalogue).
    if (recent.length === 0) {
      const ranked = await popularity.ranked();
      if (!candidates) return answer('popularity', ranked.slice(0, k).map((p) => ({ id: p.item, score: p.count })));
      const count = new Map(ranked.map((p) => [p.item, p.count]));
      return answer('popularity', byScore(candidates, candidates.map((c) => count.get(c) ?? 0), k));
    }
    // An item added through another replica since the last sync: load the catalogue now.
    const known = async (ids: readonly string[]) => {
      if (ids.some((id) => host.itemIndex(id) === undefined)) await sync.refreshCatalogue();
    };
    await known([...recent, ...(candidates ?? [])]);
    if (candidates) return answer('given', candidates.length ? byScore(candidates, await host.score(cur, recent, candidates), k) : []);
    const seen = await storage.userItems(user);
    if (retriever) {
      const full = await host.full(cur, recent, seen, depth);
      if (full) return answer('two-stage', byScore(full.map((r) => r.id), full.map((r) => r.score), k));
      // The retriever knows none of the user's items (all added after it was trained): the popularity pool.
    }
    const pool = (await storage.popularity(poolSize + seen.size)).map((p) => p.item).filter((id) => !seen.has(id)).slice(0, poolSize);
    await known(pool);
    return answer('popular-unseen', pool.length ? byScore(pool, await host.score(cur, recent, pool), k) : []);
  };
  app.post<{ Body: { user: string; k?: number; candidates?: string[] } }>(
    '/v1/recommendations',
    {
      ...route('read'),
      schema: {
        tags: ['recommendations'],
        summary: "top-k items for a user: among the given candidates, or from the full catalogue (the active version's SASRec top `depth` items the user has not interacted with, re-ranked by its LLMRec on the user's last H titles); a user without interactions gets recent popularity",
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['user'],
          properties: { user: ID, k: { type: 'integer', minimum: 1, maximum: 1000 }, candidates: { type: 'array', minItems: 1, maxItems: maxCandidates, items: ID } },
        },
        response: { 200: RECOMMENDATIONS, ...errors(400, 401, 413, 503) },
      },
    },
    async (req) => recommend(req.body.user, req.body.k ?? 10, req.body.candidates, 'body'),
  );
  app.get<{ Params: { user: string }; Querystring: { k?: string } }>(
    '/v1/users/:user/recommendations',
    {
      ...route('read'),
      schema: {
        tags: ['recommendations'],
        summary: 'top-k items for a user from the full catalogue (as POST /v1/recommendations without candidates)',
        params: { type: 'object', properties: { user: ID } },
        querystring: { type: 'object', additionalProperties: false, properties: { k: { type: 'string', pattern: '^[1-9][0-9]{0,2}$', description: 'integer 1..999 (default 10)' } } },
        response: { 200: RECOMMENDATIONS, ...errors(400, 401, 503) },
      },
    },
    async (req) => recommend(req.params.user, req.query.k ? Number(req.query.k) : 10, undefined, 'querystring'),
  );

  // ---- evolutions ----
  app.post<{ Body: (Partial<EvolveOptions> & { gateMargin?: number }) | undefined }>(
    '/v1/evolutions',
    {
      ...route('write'),
      schema: {
        tags: ['evolution'],
        summary: "start an EvoRec evolution of the active version over the interactions since its cut-off (a background child process); the result is activated when it passes the gate",
        body: EVOLVE_OPTIONS,
        response: { 202: EVOLUTION, ...errors(400, 401, 403, 409) },
      },
    },
    async (req, reply) => {
      const { gateMargin, ...opts } = req.body ?? {};
      const e = await evolutions.start({ ...evolveDefaults, ...opts }, gateMargin);
      return reply.code(202).send(e);
    },
  );
  app.get('/v1/evolutions', { ...route('read'), schema: { tags: ['evolution'], summary: 'every evolution job', response: { 200: { type: 'array', items: EVOLUTION } } } }, async () => storage.evolutions());
  app.get<{ Params: { id: number } }>(
    '/v1/evolutions/:id',
    { ...route('read'), schema: { tags: ['evolution'], summary: "one evolution job and its progress", params: { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9]{1,9}$' } } }, response: { 200: EVOLUTION, ...errors(400, 404) } } },
    async (req) => {
      const e = await storage.evolution(Number(req.params.id));
      if (!e) throw new HttpError(404, `no evolution ${req.params.id}`);
      return e;
    },
  );

  // ---- versions ----
  // The database's active version is the truth (another replica may have activated one since this one's last sync).
  const activate = (v: ModelVersion, reason: string): Promise<ModelVersion> =>
    host.exclusive(async () => {
      const active = await storage.activeVersion();
      if (active?.id === v.id && host.current!.version.id === v.id) return active;
      const loaded = await host.load(v).catch((err: unknown) => {
        throw new HttpError(409, `version ${v.id} does not load: ${err instanceof Error ? err.message : String(err)}`);
      });
      let activated: ModelVersion;
      try {
        activated = active?.id === v.id ? active : await storage.activateVersion(v.id, reason);
      } catch (e) {
        host.discard(loaded);
        throw e;
      }
      host.swap({ ...loaded, version: activated });
      log(`version ${v.id} active (${reason})`);
      return activated;
    });
  const versionParam = { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9]{1,9}$' } } } as const;
  const getVersion = async (id: string | number) => {
    const v = await storage.version(Number(id));
    if (!v) throw new HttpError(404, `no version ${id}`);
    return v;
  };
  app.get('/v1/versions', { ...route('read'), schema: { tags: ['versions'], summary: 'the model-version registry', response: { 200: { type: 'array', items: VERSION } } } }, async () => storage.versions());
  app.get<{ Params: { id: string } }>('/v1/versions/:id', { ...route('read'), schema: { tags: ['versions'], summary: 'one version', params: versionParam, response: { 200: VERSION, ...errors(400, 404) } } }, async (req) => getVersion(req.params.id));
  app.post<{ Body: { folder: string; trainedUpTo: number | 'latest'; activate?: boolean; note?: string } }>(
    '/v1/versions',
    {
      ...route('write'),
      schema: {
        tags: ['versions'],
        summary: 'register an LLMRec folder trained elsewhere (e.g. on the log up to a seq) as a version',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['folder', 'trainedUpTo'],
          properties: {
            folder: { type: 'string', minLength: 1, maxLength: 4096 },
            trainedUpTo: { oneOf: [{ type: 'integer', minimum: 0 }, { type: 'string', enum: ['latest'] }] },
            activate: { type: 'boolean' },
            note: { type: 'string', maxLength: 2000 },
          },
        },
        response: { 201: VERSION, ...errors(400, 401, 403, 409) },
      },
    },
    async (req, reply) => {
      const { lastSeq } = await storage.logState();
      const upTo = req.body.trainedUpTo === 'latest' ? lastSeq : req.body.trainedUpTo;
      if (upTo > lastSeq) throw new HttpError(400, `body.trainedUpTo: ${upTo} is past the end of the log (seq ${lastSeq})`);
      let folder: string;
      try {
        folder = confineFolder(modelsRoot, req.body.folder);
      } catch (e) {
        if (e instanceof FolderError) throw new HttpError(400, `body.folder: ${e.message}`);
        throw e;
      }
      // Load it once (in the scoring workers) before registering: a folder that does not load is refused.
      host.discard(await host.load({ id: 0, folder, parentId: null, trainedUpTo: upTo, metrics: {}, status: 'candidate', createdAt: '', activatedAt: null, note: null }).catch((err: unknown) => {
        throw new HttpError(400, `body.folder: ${err instanceof Error ? err.message : String(err)}`);
      }));
      let v = await storage.addVersion({ folder, parentId: null, trainedUpTo: upTo, metrics: {}, note: req.body.note ?? 'registered' });
      if (req.body.activate) v = await activate(v, 'registered');
      return reply.code(201).send(v);
    },
  );
  app.post<{ Params: { id: string } }>(
    '/v1/versions/:id/activate',
    { ...route('write'), schema: { tags: ['versions'], summary: 'serve this version from now on (any registered version, rejected ones included)', params: versionParam, response: { 200: VERSION, ...errors(400, 401, 403, 404, 409) } } },
    async (req) => activate(await getVersion(req.params.id), 'activated by request'),
  );
  app.post(
    '/v1/versions/rollback',
    { ...route('write'), schema: { tags: ['versions'], summary: 'serve again the version that was active before the current one', response: { 200: VERSION, ...errors(401, 403, 409) } } },
    async () => {
      // The activation history as a stack: an activation pushes, a rollback pops what it rolled back from.
      const stack: number[] = [];
      for (const h of await storage.activationHistory()) {
        if (h.reason.startsWith('rollback')) stack.pop();
        else if (stack.at(-1) !== h.versionId) stack.push(h.versionId);
      }
      const current = (await storage.activeVersion())?.id ?? host.current!.version.id;
      const prev = stack.length >= 2 && stack.at(-1) === current ? stack.at(-2) : undefined;
      if (prev === undefined) throw new HttpError(409, `no earlier version to roll back to from version ${current}`);
      return activate(await getVersion(prev), `rollback from version ${current}`);
    },
  );

  return {
    app,
    storage,
    host,
    evolutions,
    metrics,
    async close() {
      await app.close();
      await sync.stop();
      await evolutions.stop();
      await host.close();
      await storage.close();
    },
  };
}

/** The active version at start, or the given model registered (and activated) as the first one. */
async function activeAtStart(storage: Storage, config: ServeConfig, modelsRoot: string, label: string, log: (line: string) => void): Promise<ModelVersion> {
  let active = await storage.activeVersion();
  if (!active && config.model) {
    const { lastSeq } = await storage.logState();
    const upTo = config.modelTrainedUpTo === undefined || config.modelTrainedUpTo === 'latest' ? lastSeq : config.modelTrainedUpTo;
    let folder: string;
    try {
      folder = confineFolder(modelsRoot, resolve(config.model));
    } catch (e) {
      if (e instanceof FolderError) throw new RangeError(`--model: ${e.message}`);
      throw e;
    }
    const v = await storage.addVersion({ folder, parentId: null, trainedUpTo: upTo, metrics: {}, note: 'registered at start' });
    active = await storage.activateVersion(v.id, 'registered at start');
    log(`registered ${v.folder} as version ${v.id} (trained up to seq ${upTo})`);
  } else if (active && config.model && realpathOr(resolve(config.model)) !== active.folder) {
    log(`the registry already has an active version (${active.id}); --model ${config.model} is not registered`);
  }
  if (!active) throw new RangeError(`${label}: no model version yet; give --model <LLMRec folder> for the first start`);
  return active;
}

function realpathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

export type { Evolution };
export { DEFAULT_EVOLVE };
