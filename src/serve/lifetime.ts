/**
 * The evolution child's lifetime is bound to the service's. The child computes synchronously for minutes
 * at a time, so its event loop cannot see the IPC channel close when the service is killed (kill -9 left
 * it computing under PID 1): a watchdog thread, which runs beside the busy main thread, checks the parent
 * pid every 250 ms and kills the process once the parent is gone. On the service side, a restart finds a
 * job still marked running, and stops its process if it is still alive (recognised by its command line,
 * so that a reused pid is never killed) before marking the job interrupted.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

export const WORKER_FLAG = '--evorec-evolve-worker';

/** The worker's arguments: its flag, the service's pid, the job, the database (what a restart recognises it by). */
export function workerArgs(parentPid: number, job: number, db: string): string[] {
  return [WORKER_FLAG, `--parent=${parentPid}`, `--job=${job}`, `--db=${db}`];
}

/** The parent pid given by workerArgs, or null. */
export function parentFromArgs(argv: readonly string[]): number | null {
  const a = argv.find((x) => x.startsWith('--parent='));
  const n = a ? Number(a.slice('--parent='.length)) : NaN;
  return Number.isInteger(n) && n > 0 ? n : null;
}

/**
 * Kills this process as soon as its parent is no longer `parentPid` (the parent died: the process was
 * handed to init or a subreaper), even while the main thread is busy. Returns the watchdog thread
 * (unreferenced: it never keeps the process alive).
 */
export function exitWithParent(parentPid: number, intervalMs = 250): Worker {
  const w = new Worker(
    `const { workerData: w } = require('node:worker_threads');
     const check = () => { if (process.ppid !== w.parent) process.kill(process.pid, 'SIGKILL'); };
     check();
     setInterval(check, w.intervalMs);`,
    { eval: true, workerData: { parent: parentPid, intervalMs }, execArgv: [], env: {}, stdout: false, stderr: false },
  );
  w.unref();
  return w;
}

/** The command line of a live (not zombie) process, or null when there is none by that pid. */
export function commandLine(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ...": the state follows the last ')' (comm may hold anything).
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') return null; // a zombie: dead, not yet reaped
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.length ? raw.replace(/\0$/, '').split('\0') : null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return null;
    try {
      readFileSync('/proc/self/stat');
      return null; // /proc works: no such process
    } catch {
      // No /proc (macOS, BSD): ask ps.
      try {
        const out = execFileSync('ps', ['-o', 'stat=,args=', '-p', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
        if (!out || out.startsWith('Z')) return null;
        return out.split(/\s+/).slice(1);
      } catch {
        return null;
      }
    }
  }
}

/** Is `pid` the evolution worker of this job of this database? */
export function isEvolveWorker(pid: number, job: number, db: string): boolean {
  const args = commandLine(pid);
  return !!args && args.includes(WORKER_FLAG) && args.includes(`--job=${job}`) && args.includes(`--db=${db}`);
}

/**
 * Stops the worker of a job if it is still running (SIGKILL, then waits up to `waitMs` for it to be gone).
 * Returns true when there was one to stop.
 */
export async function stopSurvivor(pid: number, job: number, db: string, waitMs = 5000): Promise<boolean> {
  if (!isEvolveWorker(pid, job, db)) return false;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return false;
  }
  const t0 = Date.now();
  while (commandLine(pid) !== null && Date.now() - t0 < waitMs) await new Promise((r) => setTimeout(r, 20));
  return true;
}
