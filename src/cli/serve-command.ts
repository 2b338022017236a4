/** `evorec serve`: the recommendation service (src/serve). */
import type { Command } from 'commander';
import { MIN_TOKEN_LENGTH, splitTokens, validateTokens, type ScopedToken } from '../serve/auth.js';
import { Option, parseFloatArg, parseIntArg } from './main.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the recommendation service: HTTP API, interaction log, model versions, EvoRec evolution')
    .requiredOption('--db <file|url>', 'the storage: a SQLite file, or a postgres:// (postgresql://) URL that several replicas may share; created or migrated when needed')
    .option('--model <dir>', 'LLMRec folder registered as the first version when the registry is empty (inside --models-root)')
    .option('--models-root <dir>', 'model folders are read only from inside this folder, symlinks resolved (--model, POST /v1/versions; relative folders are relative to it)', '.')
    .option('--trained-up-to <seq|latest>', "the --model was trained on the stored log up to this seq ('latest': all of it)", 'latest')
    .option('--versions <dir>', 'folder of evolved versions (default: <db>.versions; required with a PostgreSQL --db, on storage every replica sees)')
    .option('--sync-interval <ms>', 'how often to look for an activation or a catalogue change made through another replica (0 = never)', parseIntArg('--sync-interval', 0), 2000)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0 = any free port)', parseIntArg('--port', 0, 65535), 8080)
    .addOption(new Option('--token <token>', `write token: bearer token of every route, at least ${MIN_TOKEN_LENGTH} characters; repeatable`).argParser(collect).default([], '$EVOREC_TOKEN, several separated by commas'))
    .addOption(new Option('--read-token <token>', 'read token: bearer token of the read routes only; repeatable').argParser(collect).default([], '$EVOREC_READ_TOKEN'))
    .option('--open-reads', 'recommendations, versions, evolutions and metrics without a token')
    .option('--body-limit <bytes>', 'largest request body', parseIntArg('--body-limit', 1), 1 << 20)
    .option('--max-batch <n>', 'largest batch of interactions or items per request', parseIntArg('--max-batch', 1), 1000)
    .option('--pool <n>', 'candidate pool (popular unseen items) when a request gives no candidates and the version has no retriever', parseIntArg('--pool', 1), 50)
    .option('--max-candidates <n>', 'largest candidate list of a request', parseIntArg('--max-candidates', 1, 100_000), 500)
    .option('--depth <n>', 'full-catalogue mode: the retriever\'s top n items are re-ranked by LLMRec', parseIntArg('--depth', 1, 1000), 50)
    .option('--workers <n>', 'scoring worker threads (default: the cores)', parseIntArg('--workers', 1, 256))
    .option('--batch <n>', 'most requests a worker scores in one forward', parseIntArg('--batch', 1, 256), 1)
    .option('--max-queue <n>', 'most recommendation requests waiting for a worker (more answer 503)', parseIntArg('--max-queue', 1), 256)
    .option('--max-prompt-tokens <n>', 'largest prompt (and answer) a served version may build, in tokens', parseIntArg('--max-prompt-tokens', 1), 2048)
    .option('--popularity-window <n>', 'cold start: popularity over the last n interactions', parseIntArg('--popularity-window', 1), 10_000)
    .option('--gate-margin <x>', 'an evolved version may score this much below the active one (NDCG@3) and still be activated', parseFloatArg('--gate-margin'), 0.02)
    .option('--no-gate', 'activate every finished evolution')
    .option('--evolve-after <n>', 'start an evolution once n interactions arrived after the active cut-off (0 = only on request)', parseIntArg('--evolve-after', 0), 0)
    .option('--evolve-epochs <n>', 'epochs of the EvoRec update', parseIntArg('--evolve-epochs', 1), 2)
    .option('--sasrec-epochs <n>', 'epochs of the Forget SASRec', parseIntArg('--sasrec-epochs', 1), 3)
    .option('--threads <n>', 'native kernel threads, process-wide, shared by the workers (default: the cores / --workers, at least 1)', parseIntArg('--threads', 1))
    .option('--log', 'log every request (JSON lines on stdout)')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      const write: string[] = o.token.length ? o.token : splitTokens(process.env.EVOREC_TOKEN);
      const read: string[] = o.readToken.length ? o.readToken : splitTokens(process.env.EVOREC_READ_TOKEN);
      if (!write.length) throw new RangeError('serve: give --token or set EVOREC_TOKEN (write routes need a bearer token)');
      const tokens: ScopedToken[] = [...write.map((token) => ({ token, scope: 'write' as const })), ...read.map((token) => ({ token, scope: 'read' as const }))];
      validateTokens(tokens, 'serve');
      if (o.port < 0 || o.port > 65535) throw new RangeError(`--port must be in [0, 65535], got ${o.port}`);
      if (o.trainedUpTo !== 'latest' && !/^\d+$/.test(o.trainedUpTo)) throw new RangeError(`--trained-up-to must be a seq or "latest", got "${o.trainedUpTo}"`);
      const log = (line: string) => {
        if (!o.quiet) process.stderr.write(`${line}\n`);
      };
      // Loaded here, so that other commands do not load the HTTP server and the database drivers.
      const { createService } = await import('../serve/server.js');
      const service = await createService({
        db: o.db,
        model: o.model,
        modelTrainedUpTo: o.trainedUpTo === 'latest' ? 'latest' : Number(o.trainedUpTo),
        versionsDir: o.versions,
        syncIntervalMs: o.syncInterval,
        modelsRoot: o.modelsRoot,
        tokens,
        openReads: Boolean(o.openReads),
        bodyLimit: o.bodyLimit,
        maxBatch: o.maxBatch,
        poolSize: o.pool,
        maxCandidates: o.maxCandidates,
        depth: o.depth,
        workers: o.workers,
        threads: o.threads,
        batch: o.batch,
        maxQueue: o.maxQueue,
        maxPromptTokens: o.maxPromptTokens,
        popularityWindow: o.popularityWindow,
        gate: { enabled: o.gate, margin: o.gateMargin },
        evolveAfter: o.evolveAfter,
        evolve: { epochs: o.evolveEpochs, sasrecEpochs: o.sasrecEpochs },
        logger: Boolean(o.log),
        log,
      });
      const address = await service.app.listen({ host: o.host, port: o.port });
      process.stdout.write(`evorec serve: listening on ${address}\n`);
      let closing = false;
      const stop = (signal: string) => {
        if (closing) return;
        closing = true;
        log(`${signal}: closing`);
        void service.close().then(() => process.exit(0));
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });
}
