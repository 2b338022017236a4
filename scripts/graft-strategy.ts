/**
 * Puts one strategy of another run beside a run's own, under a new name, so that the report pairs them
 * user by user: for example EvoRec with the sample's SASRec as its Forget filter (an earlier run) beside
 * EvoRec with every user's. Only sound when everything else about the two runs is the same, so the
 * strategies `--check` names must be identical in both runs, seed by seed, record by record: the views in
 * which they are are kept, the others dropped (a view whose retriever differs differs for every strategy).
 *
 *   node --import tsx scripts/graft-strategy.ts <into results.json> <from results.json> <strategy> <new name> <out results.json> [--check static,finetune]
 *
 * Then `npx evorec report --out <folder of out>` writes results.md and report.html from it.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const args = process.argv.slice(2);
const checkAt = args.indexOf('--check');
const check = checkAt >= 0 ? args.splice(checkAt, 2)[1].split(',') : ['static', 'finetune'];
const [intoFile, fromFile, strategy, name, outFile] = args;
if (!outFile) {
  process.stderr.write('usage: node --import tsx scripts/graft-strategy.ts <into results.json> <from results.json> <strategy> <new name> <out results.json> [--check static,finetune]\n');
  process.exit(2);
}
interface Update { strategy: string; period: number; eval: Record<string, unknown> }
interface Run { strategies: string[]; updates: Update[] }
interface Seeds { seeds: number[]; runs: Run[]; samplers?: string[]; command?: string }
const read = (f: string): Seeds => JSON.parse(readFileSync(f, 'utf8'));
const into = read(intoFile);
const from = read(fromFile);
const fail = (msg: string): never => {
  process.stderr.write(`graft-strategy: ${msg}\n`);
  process.exit(1);
};
if (into.runs.some((r) => r.strategies.includes(name))) fail(`${intoFile} already has a strategy named ${name}`);
// The views in which every checked record of every seed is identical in both runs; the others are dropped.
const views = new Set(Object.keys(into.runs[0].updates[0].eval));
const pairs = into.runs.map((run, i) => {
  const seed = into.seeds[i];
  const j = from.seeds.indexOf(seed);
  if (j < 0) fail(`${fromFile} has no seed ${seed}`);
  return { run, other: from.runs[j], seed };
});
for (const { run, other, seed } of pairs) {
  for (const s of check) {
    const mine = run.updates.filter((u) => u.strategy === s);
    if (mine.length === 0) fail(`seed ${seed}: ${intoFile} has no ${s} to check`);
    for (const u of mine) {
      const v = other.updates.find((x) => x.strategy === s && x.period === u.period);
      if (!v) fail(`seed ${seed}: ${fromFile} has no ${s} at P${u.period}`);
      for (const view of [...views]) if (JSON.stringify(u.eval[view]) !== JSON.stringify(v!.eval[view])) views.delete(view);
    }
  }
}
if (views.size === 0) fail(`${check.join(', ')} differ between the runs in every view: the runs are not comparable`);
for (const { run, other, seed } of pairs) {
  const grafted = other.updates.filter((u) => u.strategy === strategy);
  if (grafted.length === 0) fail(`seed ${seed}: ${fromFile} has no ${strategy}`);
  run.updates.push(...grafted.map((u) => ({ ...u, strategy: name })));
  run.strategies.push(name);
  for (const u of run.updates) u.eval = Object.fromEntries(Object.entries(u.eval).filter(([view]) => views.has(view)));
}
if (into.samplers) into.samplers = into.samplers.filter((s) => views.has(s));
// The report prints the command: the graft's, naming the run the rest comes from.
into.command = `node --import tsx scripts/graft-strategy.ts ${process.argv.slice(2).join(' ')} (the rest: ${into.command ?? intoFile})`;
writeFileSync(outFile, JSON.stringify(into));
process.stderr.write(`grafted ${strategy} of ${fromFile} as ${name} (${into.runs.length} seed(s); ${check.join(', ')} identical in the ${[...views].join(', ')} views, the only ones kept)\n`);
