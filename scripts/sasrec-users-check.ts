/**
 * Does the per-period SASRec beat random on a user sample when it trains on every user? The study's
 * options (Beauty, 3,000 users), SASRec up to P1 trained on the sample (`sample`) or on all users
 * (`all`, restricted to the sample's items), each scored with the experiment's own baselines at P0 and P1.
 *   node --import tsx scripts/sasrec-users-check.ts <out folder> [sample|all] [users] [data] [bce|softmax] [max-train-per-user] [sasrec epochs] [sasrec steps]
 */
import { experimentBaselines } from '../src/evolve/runner.js';
import { experimentSplit, resolveExperimentOptions, sasrecPerPeriod } from '../src/experiment/experiment.js';

const [out, who = 'all', users = '3000', data = 'beauty', loss = 'bce', cap = '0', epochs = '20', steps = '0'] = process.argv.slice(2);
if (!out) {
  process.stderr.write('usage: node --import tsx scripts/sasrec-users-check.ts <out folder> [sample|all] [users] [data] [bce|softmax] [max-train-per-user] [sasrec epochs] [sasrec steps]\n');
  process.exit(2);
}
const o = resolveExperimentOptions({ out, data, users: Number(users), maxTrainPerUser: Number(cap), sasrecUsers: who as 'sample' | 'all', sasrecLoss: loss as 'bce' | 'softmax', sasrecEpochs: Number(epochs), sasrecSteps: Number(steps), samplers: ['matched', 'uniform'] });
const { split } = await experimentSplit(o);
const sasrecAt = sasrecPerPeriod(o, split, (s) => process.stderr.write(`${s}\n`));
for (const t of [0, 1]) {
  const b = await experimentBaselines(split, t, { evalUsers: 300, seed: o.seed, samplers: o.samplers, candidates: o.candidates, sasrec: await sasrecAt(t) });
  for (const view of ['matched', 'uniform']) {
    const row = (name: string) => b[`${name}/${view}`]?.groups.all;
    const cell = (name: string) => `${name} HR@1 ${row(name)!.metrics['HR@1'].toFixed(4)} NDCG@3 ${row(name)!.metrics['NDCG@3'].toFixed(4)}`;
    console.log(`P${t} ${view} (${row('random')!.users} users): ${['random', 'popularity', 'sasrec'].map(cell).join('; ')}`);
  }
}
