/**
 * A PostgreSQL server for the tests, and a fresh database per test:
 *
 * - `EVOREC_TEST_PG` (a URL of a user that may CREATE DATABASE) is used when set;
 * - otherwise, when PostgreSQL's binaries are installed (`/usr/lib/postgresql/<version>/bin`, where
 *   Debian's `apt-get install postgresql` puts them), a throwaway cluster is created in a temporary folder
 *   and started on a free 127.0.0.1 port (and a unix socket in that folder) for this test process, and
 *   stopped when it exits. PostgreSQL refuses to run as root, so as root initdb and pg_ctl run as the
 *   `postgres` user (`runuser`), in a folder it owns;
 * - otherwise the PostgreSQL tests are skipped, with the reason printed, unless `EVOREC_REQUIRE_PG=1`
 *   (CI) makes that a failure.
 *
 * The throwaway cluster runs with `fsync = off` unless asked to be durable: the tests kill clients (a
 * replica), never the server, so what they check (acknowledged = committed) does not depend on it; the
 * ingest benchmark asks for a durable cluster.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export interface PgServer {
  /** A URL of the server's `postgres` database, for CREATE and DROP DATABASE. */
  adminUrl: string;
  /** Where it came from, for the test log. */
  origin: string;
  stop(): Promise<void>;
}

const ROOT = '/usr/lib/postgresql';

/** The bin folder of the newest installed PostgreSQL with initdb and pg_ctl, or null. */
export function findPgBin(root = ROOT): string | null {
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = join(root, v, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl'))) return bin;
  }
  return null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Starts a throwaway cluster with the binaries in `bin`. */
export async function startCluster(bin: string, opts: { durable?: boolean } = {}): Promise<PgServer> {
  const base = mkdtempSync(join(tmpdir(), 'evorec-pg-'));
  const asRoot = process.getuid?.() === 0;
  const pgc = async (cmd: string, args: string[]) => {
    const file = join(bin, cmd);
    try {
      return await (asRoot ? run('runuser', ['-u', 'postgres', '--', file, ...args]) : run(file, args));
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`${cmd} failed: ${(err.stderr || err.message).trim()}`);
    }
  };
  if (asRoot) {
    let ids: number[];
    try {
      ids = ['-u', '-g'].map((f) => Number(execFileSync('id', [f, 'postgres'], { encoding: 'utf8' }).trim()));
    } catch {
      rmSync(base, { recursive: true, force: true });
      throw new Error('running as root, and there is no `postgres` user to run the PostgreSQL server as (PostgreSQL refuses root)');
    }
    chownSync(base, ids[0], ids[1]);
  }
  const data = join(base, 'data');
  await pgc('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-instructions', ...(opts.durable ? [] : ['--no-sync'])]);
  const port = await freePort();
  const settings = [`-p ${port}`, `-k ${base}`, '-c listen_addresses=127.0.0.1', '-c max_connections=200', ...(opts.durable ? [] : ['-c fsync=off', '-c full_page_writes=off'])];
  await pgc('pg_ctl', ['-D', data, '-l', join(base, 'server.log'), '-w', '-t', '60', '-o', settings.join(' '), 'start']);
  const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  // If the test process ends without stop() (a failure, a kill), the server does not outlive it.
  const onExit = () => {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      // already gone
    }
    rmSync(base, { recursive: true, force: true });
  };
  process.on('exit', onExit);
  return {
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    origin: `a throwaway PostgreSQL ${bin.split('/').at(-2)} cluster on 127.0.0.1:${port} (${base})`,
    async stop() {
      process.off('exit', onExit);
      await pgc('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => process.kill(pid, 'SIGQUIT'));
      rmSync(base, { recursive: true, force: true });
    },
  };
}

let shared: Promise<PgServer | string> | null = null;

/**
 * The server for this test process (started once), or the reason there is none (a string: skip the
 * PostgreSQL tests with it). With EVOREC_REQUIRE_PG=1 there is no skipping: a missing server throws.
 */
export function postgresForTests(): Promise<PgServer | string> {
  shared ??= (async () => {
    const url = process.env.EVOREC_TEST_PG;
    if (url) return { adminUrl: url, origin: 'EVOREC_TEST_PG', stop: async () => {} };
    const bin = findPgBin();
    if (!bin) {
      const why = `no PostgreSQL for the tests: set EVOREC_TEST_PG to a server URL, or install PostgreSQL (apt-get install postgresql: initdb and pg_ctl under ${ROOT}/<version>/bin)`;
      if (process.env.EVOREC_REQUIRE_PG === '1') throw new Error(`${why}; EVOREC_REQUIRE_PG=1 forbids skipping`);
      process.stderr.write(`${why}: skipping the PostgreSQL tests\n`);
      return why;
    }
    return startCluster(bin);
  })();
  return shared;
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A new, empty database with a random name on the server; drop() removes it (closing what is still connected). */
export async function freshDatabase(server: PgServer): Promise<TestDatabase> {
  const name = `evorec_test_${randomBytes(6).toString('hex')}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: server.adminUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(server.adminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), name, drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}
