#!/usr/bin/env node
/**
 * The `evorec` command line. Each subcommand is a thin layer over the library: it parses options,
 * shows progress on stderr, prints results on stdout, and turns expected errors into one clear line.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { DataError } from '../data/errors.js';
import { registerDataCommands } from './data-commands.js';
import { registerModelCommands } from './model-commands.js';
import { registerRecCommands } from './rec-commands.js';
import { registerDoctor } from './doctor.js';
import { registerLLMRecCommands } from './llmrec-commands.js';
import { registerExperimentCommand } from './experiment-command.js';
import { registerProbeCommand } from './probe-command.js';
import { registerBenchmarkCommand } from './benchmark-command.js';
import { registerServeCommand } from './serve-command.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('evorec')
    .description('Keep an LLM-based sequential recommender current with EvoRec (Locate-Forget-Update).')
    .version('0.1.0')
    .showHelpAfterError();
  registerDataCommands(program);
  registerModelCommands(program);
  registerRecCommands(program);
  registerLLMRecCommands(program);
  registerExperimentCommand(program);
  registerProbeCommand(program);
  registerBenchmarkCommand(program);
  registerServeCommand(program);
  registerDoctor(program);
  return program;
}

export const parseIntArg = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got "${v}"`);
  return n;
};

export const parseFloatArg = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got "${v}"`);
  return n;
};

export { Option };

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof DataError || e instanceof RangeError) {
      process.stderr.write(`evorec: ${e.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw e;
  }
}

// Run only when executed, not when imported by tests.
const invoked = process.argv[1] ?? '';
if (/[\\/]cli[\\/]main\.(js|ts)$/.test(invoked) || /[\\/]evorec$/.test(invoked)) void main();
