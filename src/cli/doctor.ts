/** `evorec doctor`: what this installation runs on (kernels, BLAS, threads, Node, embedded data). */
import { existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { kernelInfo } from '../core/index.js';
import { PACKAGE_ROOT, PRESETS } from '../data/source.js';

export function doctorReport(): Record<string, unknown> {
  const k = kernelInfo();
  return {
    kernels: k.implementation,
    blas: k.blas,
    threads: k.threads,
    ...(k.note ? { note: k.note } : {}),
    node: process.version,
    cpus: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    embeddedData: Object.fromEntries(Object.entries(PRESETS).map(([name, p]) => [name, existsSync(join(PACKAGE_ROOT, 'data', p.dir))])),
  };
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('print which kernels (native or TypeScript), which BLAS and how many threads are in use')
    .option('--json', 'print JSON')
    .action((o) => {
      const r = doctorReport();
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else for (const [key, v] of Object.entries(r)) process.stdout.write(`${key.padEnd(13)} ${typeof v === 'object' ? JSON.stringify(v) : v}\n`);
    });
}
