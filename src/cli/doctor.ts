/** `evorec doctor`: what this installation runs on (kernels, GEMM, threads, Node, embedded data). */
import { existsSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { kernelInfo } from '../core/index.js';
import { PACKAGE_ROOT, PRESETS } from '../data/source.js';

const GEMM_NAMES: Record<string, string> = {
  'builtin-avx512': 'built-in AVX-512',
  'builtin-avx2': 'built-in AVX2',
  'builtin-c': 'built-in portable C',
  openblas: 'OpenBLAS',
  cblas: 'CBLAS',
  typescript: 'TypeScript',
};

/** 'built-in AVX-512 (builtin-avx512)' for a GEMM name (the name is what EVOREC_GEMM and setGemm take). */
export function describeGemm(name: string): string {
  return `${GEMM_NAMES[name] ?? name} (${name})`;
}

/** A hint when OpenBLAS chose kernels older than the CPU (an OpenBLAS that does not know the CPU). */
function openblasHint(core: string): string | null {
  let flags = '';
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '';
  } catch {
    return null;
  }
  const avx512 = /\bavx512f\b/.test(flags), avx2 = /\bavx2\b/.test(flags);
  const good = ['SkylakeX', 'Cooperlake', 'SapphireRapids', ...(avx512 ? [] : ['Haswell', 'Zen'])];
  if (!avx2 || good.includes(core)) return null;
  const want = avx512 ? 'SkylakeX' : 'Haswell';
  return `OpenBLAS runs its ${core} kernels on a CPU with ${avx512 ? 'AVX-512' : 'AVX2'}; with EVOREC_GEMM=blas, set OPENBLAS_CORETYPE=${want}`;
}

export function doctorReport(): Record<string, unknown> {
  const k = kernelInfo();
  return {
    kernels: k.implementation,
    gemm: describeGemm(k.blas),
    gemmAvailable: k.gemmAvailable.map(describeGemm),
    ...(k.openblasCore ? { openblasCore: k.openblasCore } : {}),
    ...(k.openblasCore && openblasHint(k.openblasCore) ? { openblasNote: openblasHint(k.openblasCore) } : {}),
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
    .description('print which kernels (native or TypeScript), which GEMM (and which could run) and how many threads are in use')
    .option('--json', 'print JSON')
    .action((o) => {
      const r = doctorReport();
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else {
        for (const [key, v] of Object.entries(r)) {
          const text = Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : v;
          process.stdout.write(`${key.padEnd(13)} ${text}\n`);
        }
      }
    });
}
