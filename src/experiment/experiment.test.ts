import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_BASE_MODEL } from '../data/source.js';
import { roundsDataset, tempDir } from '../data/test-utils/tmp.js';
import { loadSASRec } from '../models/sasrec-io.js';
import { staticStrategy, strategyRegistry } from '../evolve/strategies.js';
import type { Strategy } from '../evolve/strategy.js';
import { checkRunOptions, checkViews, EXPERIMENT_DEFAULTS, experimentIdentity, experimentSplit, resolveExperimentOptions, resolveStrategies, runExperiment, runOptionsOf, sasrecPerPeriod } from './experiment.js';

const mine: Strategy = { name: 'mine', description: 'a custom strategy', update: staticStrategy.update };

describe('runExperiment options', () => {
  it('takes strategy names and Strategy objects side by side, in order', () => {
    const r = resolveStrategies(['static', mine, 'evorec']);
    assert.deepEqual(r.map((s) => s.name), ['static', 'mine', 'evorec']);
    assert.equal(r[1], mine);
    assert.equal(r[0], strategyRegistry().static);
  });

  it('refuses unknown names, duplicates, names that are no folder names, and non-strategies, naming the option', () => {
    assert.throws(() => resolveStrategies(['static', 'magic']), /^RangeError: --strategies: unknown strategy "magic" \(known: static, retrain/);
    assert.throws(() => resolveStrategies(['static', { ...mine, name: 'static' }]), /^RangeError: --strategies: two strategies named "static"$/);
    assert.throws(() => resolveStrategies([{ ...mine, name: '../up' }]), /--strategies: strategy name "\.\.\/up" must start with a letter or digit/);
    assert.throws(() => resolveStrategies([{ name: 'x' } as unknown as Strategy]), /--strategies: a strategy must be a name or an object with a name and an update\(ctx\) method/);
    assert.throws(() => resolveStrategies([]), /--strategies: at least one strategy/);
  });

  it('checks the views: known names, a candidate sampler first', () => {
    assert.deepEqual(checkViews(['matched', 'two-stage']), ['matched', 'two-stage']);
    assert.throws(() => checkViews(['two-stage', 'matched']), /--samplers: the first view is the headline and the validation view, so it must be a candidate sampler, not two-stage/);
    assert.throws(() => checkViews(['matched', 'fancy' as 'matched']), /--samplers: unknown sampler "fancy"/);
    assert.throws(() => checkViews([]), /--samplers: at least one sampler/);
  });

  it('refuses bad options before any work, naming the option', async () => {
    const out = join(tempDir(), 'never');
    await assert.rejects(runExperiment({ out, trainSeeds: 0 }), /^RangeError: --train-seeds: at least 1$/);
    await assert.rejects(runExperiment({ out, candidates: 1 }), /^RangeError: --candidates: expected an integer of at least 2, got 1$/);
    await assert.rejects(runExperiment({ out, updateLr: Number.NaN }), /^RangeError: --update-lr: expected a number, got NaN$/);
    await assert.rejects(runExperiment({ out, strategies: ['nope'] }), /unknown strategy "nope"/);
    await assert.rejects(runExperiment({ out: '' }), /--out: the output folder is required/);
    assert.equal(EXPERIMENT_DEFAULTS.users, 250);
  });

  it('records the options on the first run and refuses a resume that changes one, naming its flag', () => {
    const out = tempDir();
    checkRunOptions(out, [{ key: 'updateLr', flag: '--update-lr', value: 4e-4 }]);
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'options.json'), 'utf8')), { updateLr: 4e-4 });
    checkRunOptions(out, [{ key: 'updateLr', flag: '--update-lr', value: 4e-4 }]);
    assert.throws(() => checkRunOptions(out, [{ key: 'updateLr', flag: '--update-lr', value: 0.01 }]), /options\.json: this run was made with --update-lr 0\.0004, not 0\.01; resume with the same options or use a new --out$/);
    writeFileSync(join(out, 'options.json'), '{"updateLr": ');
    assert.throws(() => checkRunOptions(out, []), /options\.json: not valid JSON/);
  });

  it('reads a run\'s options back from options.json as the options that wrote it (export and import rebuild the run from them)', () => {
    const out = tempDir();
    const given = resolveExperimentOptions({
      out, data: { data: 'movielens', columns: { user: 'uid', rating: 'stars' }, delimiter: ';' }, clean: { kcore: 5, minRating: 3, dedupe: false, untitled: 'drop' },
      users: 7, periods: 2, baseShare: 0.5, cut: 'time', history: 4, maxTrainPerUser: 6, candidates: 9, seed: 3, baseModel: 'some/base', backbone: 'b', preset: 'tiny', pretrainSteps: 12,
      loraRank: 2, loraAlpha: 4, calibration: 'none', baseEpochs: 3, baseLr: 0.01, updateEpochs: 1, updateLr: 0.02, batch: 4, sasrecEpochs: 5, sasrecSteps: 8, firstTrainSeed: 9,
      samplers: ['uniform', 'two-stage'], evalUsers: 11, validUsers: 0, validInactive: true, updateBudgets: [{ epochs: 0 }, { lr: 1e-3, epochs: 2 }],
    });
    checkRunOptions(out, experimentIdentity(given));
    const back = resolveExperimentOptions(runOptionsOf(out));
    assert.deepEqual(experimentIdentity(back), experimentIdentity(given));
    assert.deepEqual([back.validInactive, back.updateBudgets, back.maxTrainPerUser, back.sasrecSteps], [true, [{ epochs: 0 }, { lr: 1e-3, epochs: 2 }], 6, 8]);
    // The new options are recorded only when set, so runs made before them resume unchanged.
    const plain = experimentIdentity(resolveExperimentOptions({ out }));
    for (const key of ['validInactive', 'updateBudgets', 'maxTrainPerUser', 'sasrecSteps']) assert.equal(plain.find((x) => x.key === key)!.value, null);
    checkRunOptions(out, experimentIdentity(back));
    writeFileSync(join(out, 'options.json'), JSON.stringify({ data: 'beauty', users: 'many' }));
    assert.throws(() => runOptionsOf(out), /options\.json: field "users": expected a number, got "many"/);
    assert.throws(() => runOptionsOf(tempDir()), /options\.json: not found \(not an experiment folder/);
  });

  it('starts the embedded Beauty data from the shipped base at history 10, anything else from a base adapter of its own', () => {
    const out = tempDir();
    assert.equal(resolveExperimentOptions({ out }).baseModel, DEFAULT_BASE_MODEL);
    assert.equal(resolveExperimentOptions({ out, data: 'beauty', history: 10 }).baseModel, DEFAULT_BASE_MODEL);
    // The shipped base reads 10 Beauty titles: another history, other data, or null train their own.
    assert.equal(resolveExperimentOptions({ out, history: 5 }).baseModel, undefined);
    assert.equal(resolveExperimentOptions({ out, data: 'movielens' }).baseModel, undefined);
    assert.equal(resolveExperimentOptions({ out, data: { data: 'beauty', interactions: 'mine.csv' } }).baseModel, undefined);
    assert.equal(resolveExperimentOptions({ out, baseModel: null }).baseModel, undefined);
    assert.equal(resolveExperimentOptions({ out, baseModel: 'some/base' }).baseModel, 'some/base');
    // A run that trained its own base resumes as one: options.json's null is read back as null, not as the default.
    checkRunOptions(out, experimentIdentity(resolveExperimentOptions({ out, baseModel: null })));
    assert.equal(runOptionsOf(out).baseModel, null);
    assert.equal(resolveExperimentOptions(runOptionsOf(out)).baseModel, undefined);
  });
});

describe('the per-period SASRec of a user sample', () => {
  it('with --sasrec-users all, trains on every user and serves the sample\'s items with that model\'s exact scores', async () => {
    const dir = tempDir();
    roundsDataset(dir, 20);
    const out = join(dir, 'exp');
    const common = { data: dir, users: 8, periods: 2, baseShare: 0.5, history: 3, candidates: 5, sasrecEpochs: 2 };
    const o = resolveExperimentOptions({ ...common, out, sasrecUsers: 'all' });
    const { split } = await experimentSplit(o);
    const { split: all } = await experimentSplit({ ...o, users: 0 });
    assert.ok(all.dataset.numUsers > split.dataset.numUsers && all.dataset.numItems >= split.dataset.numItems);
    // Every held-out target of the sample is held out in the whole split too, so SASRec never trains on one.
    const key = (sp: typeof split, x: { user: number; item: number; timestamp: number }) => `${sp.dataset.userIds[x.user]}|${sp.dataset.itemIds[x.item]}|${x.timestamp}`;
    for (const t of [0, 1, 2]) {
      const held = new Set([...all.periods[t].test, ...all.periods[t].valid].map((x) => key(all, x)));
      for (const x of [...split.periods[t].test, ...split.periods[t].valid]) assert.ok(held.has(key(split, x)), `P${t} ${key(split, x)}`);
    }
    const model = await sasrecPerPeriod(o, split, () => {})(1);
    const whole = await loadSASRec(join(out, 'sasrec', 'all-p1'));
    assert.deepEqual(whole.itemIds, all.dataset.itemIds);
    assert.equal(model.config.numItems, split.dataset.numItems);
    // A run killed after the whole model was saved but before the sample's: the resumed folder keeps the
    // whole model's training time (part of the Forget updates' cost), not zero.
    const seconds = (dir: string) => JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).train_seconds;
    assert.ok(seconds(join(out, 'sasrec', 'all-p1')) > 0);
    rmSync(join(out, 'sasrec', 'p1'), { recursive: true });
    await sasrecPerPeriod(o, split, () => {})(1);
    assert.equal(seconds(join(out, 'sasrec', 'p1')), seconds(join(out, 'sasrec', 'all-p1')));
    // The sample's items after sample histories score exactly as the whole model scores the same items.
    const index = new Map(all.dataset.itemIds.map((id, i) => [id, i]));
    const toAll = (items: number[]) => items.map((i) => index.get(split.dataset.itemIds[i])!);
    const test = split.periods[1].test.slice(0, 4);
    const hist = test.map((s) => split.history(s, 3));
    const cands = test.map(() => Array.from({ length: split.dataset.numItems }, (_, i) => i));
    const got = model.score(hist, cands);
    const want = whole.model.score(hist.map(toAll), cands.map(toAll));
    got.forEach((g, b) => assert.deepEqual([...g], [...want[b]]));
    // ... and differ from a SASRec trained on the sample alone (the default).
    const own = await sasrecPerPeriod(resolveExperimentOptions({ ...common, out: join(dir, 'own') }), split, () => {})(1);
    assert.notDeepEqual([...own.score(hist, cands)[0]], [...got[0]]);
    // The setting is recorded only when on, and a bad value is refused.
    assert.equal(experimentIdentity(o).find((x) => x.key === 'sasrecUsers')!.value, 'all');
    assert.equal(experimentIdentity(resolveExperimentOptions({ out })).find((x) => x.key === 'sasrecUsers')!.value, null);
    assert.throws(() => resolveExperimentOptions({ out, sasrecUsers: 'most' as 'all' }), { message: '--sasrec-users: expected sample or all, got "most"' });
    // --sasrec-loss softmax trains another SASRec (and says so in its folder); recorded only when on.
    const soft = resolveExperimentOptions({ ...common, out: join(dir, 'soft'), sasrecLoss: 'softmax' });
    const bySoftmax = await sasrecPerPeriod(soft, split, () => {})(1);
    assert.notDeepEqual([...bySoftmax.score(hist, cands)[0]], [...own.score(hist, cands)[0]]);
    assert.equal(JSON.parse(readFileSync(join(dir, 'soft', 'sasrec', 'p1', 'config.json'), 'utf8')).loss, 'softmax');
    assert.equal(experimentIdentity(soft).find((x) => x.key === 'sasrecLoss')!.value, 'softmax');
    assert.equal(experimentIdentity(o).find((x) => x.key === 'sasrecLoss')!.value, null);
    assert.throws(() => resolveExperimentOptions({ out, sasrecLoss: 'ce' as 'bce' }), { message: '--sasrec-loss: expected bce or softmax, got "ce"' });
    // --sasrec-steps trains each epoch for at least that many steps: another SASRec, said in its folder.
    const stepped = resolveExperimentOptions({ ...common, out: join(dir, 'steps'), sasrecSteps: 7 });
    const bySteps = await sasrecPerPeriod(stepped, split, () => {})(1);
    assert.notDeepEqual([...bySteps.score(hist, cands)[0]], [...own.score(hist, cands)[0]]);
    assert.equal(JSON.parse(readFileSync(join(dir, 'steps', 'sasrec', 'p1', 'config.json'), 'utf8')).min_steps_per_epoch, 7);
    assert.equal(experimentIdentity(stepped).find((x) => x.key === 'sasrecSteps')!.value, 7);
    assert.equal(experimentIdentity(o).find((x) => x.key === 'sasrecSteps')!.value, null);
    assert.throws(() => resolveExperimentOptions({ out, sasrecSteps: -1 }), { message: '--sasrec-steps: expected an integer of at least 0, got -1' });
  });
});
