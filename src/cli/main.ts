#!/usr/bin/env node
/**
 * The `evorec` command line. Each subcommand is a thin layer over the library: it parses options,
 * shows progress on stderr, prints results on stdout, and turns expected errors into one clear line.
 * Exit codes: EXIT_CODES below (also in every --help and the README).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DataError } from '../data/errors.js';
import { ConfigError } from '../io/hf-config.js';
import { SafetensorsError } from '../io/safetensors.js';
import { StorageError } from '../serve/storage.js';
import { TokenizerError } from '../tokenizer/tokenizer.js';
import { registerDataCommands } from './data-commands.js';
import { registerModelCommands } from './model-commands.js';
import { registerRecCommands } from './rec-commands.js';
import { registerDoctor } from './doctor.js';
import { registerLLMRecCommands } from './llmrec-commands.js';
import { registerExperimentCommand } from './experiment-command.js';
import { registerUpdateJobCommands } from './update-job-commands.js';
import { registerProbeCommand } from './probe-command.js';
import { registerBenchmarkCommand } from './benchmark-command.js';
import { registerServeCommand } from './serve-command.js';

/** What each exit status means; printed after every --help. */
export const EXIT_CODES_HELP = `
Exit codes:
  0    success; a stdout or stderr closed early (\`| head\`) stops the command quietly, its code unchanged
  1    bad input or an expected failure, in one line: evorec: <file>:<line>: field "<name>": <what>
  2    usage error: unknown command or option, a missing or out-of-range value; nothing ran
  3    internal error (a bug): the stack trace is printed; please report it
  130  interrupted (Ctrl-C); training resumes from its checkpoint when run again
`;

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('evorec')
    .description('Keep an LLM-based sequential recommender current with EvoRec (Locate-Forget-Update).')
    .version('0.1.0')
    .showHelpAfterError()
    // Usage errors come back as CommanderError (exit code 2, see main); inherited by every subcommand.
    .exitOverride();
  registerDataCommands(program);
  registerModelCommands(program);
  registerRecCommands(program);
  registerLLMRecCommands(program);
  registerExperimentCommand(program);
  registerUpdateJobCommands(program);
  registerProbeCommand(program);
  registerBenchmarkCommand(program);
  registerServeCommand(program);
  registerDoctor(program);
  for (const cmd of [program, ...program.commands]) cmd.addHelpText('after', EXIT_CODES_HELP);
  return program;
}

/**
 * An integer option, optionally within [min, max]: out of range is a usage error (exit code 2) naming
 * the option and the range, before any work starts.
 */
export const parseIntArg = (name: string, min?: number, max?: number) => (v: string) => {
  const n = Number(v);
  const ok = Number.isInteger(n) && (min === undefined || n >= min) && (max === undefined || n <= max);
  if (!ok) {
    const what = min !== undefined && max !== undefined ? `an integer from ${min} to ${max}`
      : min === 0 ? 'a non-negative integer'
      : min === 1 ? 'a positive integer'
      : min !== undefined ? `an integer of at least ${min}`
      : max !== undefined ? `an integer of at most ${max}`
      : 'an integer';
    throw new InvalidArgumentError(`${name} must be ${what}, got "${v}"`);
  }
  return n;
};

export const parseFloatArg = (name: string, min?: number, max?: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got "${v}"`);
  if ((min !== undefined && n < min) || (max !== undefined && n > max)) {
    const what = min !== undefined && max !== undefined ? `from ${min} to ${max}` : min !== undefined ? `of at least ${min}` : `of at most ${max}`;
    throw new InvalidArgumentError(`${name} must be a number ${what}, got "${v}"`);
  }
  return n;
};

export { Option };

/** Errors that mean bad input or an expected failure: one line, exit code 1. */
function isExpected(e: unknown): e is Error {
  if (e instanceof DataError || e instanceof StorageError || e instanceof RangeError || e instanceof ConfigError || e instanceof SafetensorsError || e instanceof TokenizerError) return true;
  // The operating system's errors (a folder that cannot be written, a full disk) name their path.
  const code = (e as { code?: unknown } | null)?.code;
  return e instanceof Error && typeof code === 'string' && /^E[A-Z]+$/.test(code) && typeof (e as { syscall?: unknown }).syscall === 'string';
}

/**
 * A closed stdout or stderr (`evorec doctor | head -3`) ends the command quietly: exit code 0, or the
 * code already decided (a usage error whose help text met the closed pipe still exits with 2).
 */
function quietOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
      throw e;
    });
  }
}

export async function main(argv: string[] = process.argv): Promise<void> {
  quietOnClosedPipe();
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander printed the message (and the help after it); --help and --version end with 0.
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    if (isExpected(e)) {
      process.stderr.write(`evorec: ${e.message}\n`);
      process.exitCode = 1;
      return;
    }
    process.stderr.write(`evorec: internal error (please report it): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 3;
  }
}

// Run only when executed, not when imported by tests.
const invoked = process.argv[1] ?? '';
if (/[\\/]cli[\\/]main\.(js|ts)$/.test(invoked) || /[\\/]evorec$/.test(invoked)) void main();
