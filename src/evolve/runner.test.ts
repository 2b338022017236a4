import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CandidateSampler } from '../data/candidates.js';
import { Dataset } from '../data/dataset.js';
import { PeriodSplit } from '../data/periods.js';
import { tempDir } from '../data/test-utils/tmp.js';
import { decoderPreset } from '../io/hf-config.js';
import { LLMRec } from '../models/llmrec.js';
import { PromptBuilder } from '../models/prompt.js';
import { SASRec } from '../models/sasrec.js';
import { trainSASRec } from '../models/sasrec-train.js';
import { Decoder } from '../nn/decoder.js';
import { readAdapter } from '../nn/lora.js';
import { trainTokenizer } from '../tokenizer/index.js';
import { evalSample, inactiveValidation, runStrategies, validationSample } from './runner.js';
import { evorecStrategy, staticStrategy, strategyRegistry } from './strategies.js';
import { parseBudgets, type UpdateBudget } from './period.js';
import { ProximalTerm } from './peso.js';
import type { Strategy } from './strategy.js';

const NAMES = ['red apple', 'green pear', 'blue plum', 'gold melon', 'pink peach', 'black grape', 'white lime', 'brown fig', 'gray kiwi', 'tan date', 'sour cherry', 'ripe mango'];

async function world(opts: { dropout?: number } = {}) {
  async function* log() {
    let ts = 0;
    // Early: users walk forward through the list; later half of them walk backwards. Each round, a
    // quarter of the users stay away (they are the inactive users of the next period).
    for (let round = 0; round < 4; round++) {
      for (let u = 0; u < 24; u++) {
        if (round > 0 && (u + round) % 4 === 0) continue;
        const dir = round >= 2 && u % 2 === 0 ? -1 : 1;
        for (let j = 0; j < 3; j++) yield { user: `u${u}`, item: `i${(((u + dir * (round * 3 + j)) % 12) + 12) % 12}`, timestamp: ts++ };
      }
    }
  }
  async function* items() {
    for (let k = 0; k < NAMES.length; k++) yield { item: `i${k}`, title: NAMES[k] };
  }
  const d = (await Dataset.fromStreams('drift', log(), items())).sortChronologically();
  const split = new PeriodSplit(d, { periods: 2, base: 0.5, history: 4 });
  const { tokenizer } = trainTokenizer([...NAMES, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 300 });
  const dec = new Decoder(decoderPreset('tiny', { vocabSize: tokenizer.vocabSize, numHiddenLayers: 3 }), { seed: 5 });
  dec.addAdapter('base', { r: 4, dropout: opts.dropout ?? 0 }, { seed: 5, freezeBase: true });
  const model = new LLMRec(dec, new PromptBuilder(tokenizer, split.dataset.titles, { history: 4 }));
  const sasrecFor = async (t: number) => {
    const m = new SASRec({ numItems: split.dataset.numItems, hidden: 16, maxLen: 8, dropout: 0 });
    await trainSASRec(m, split, t, { epochs: 2, batchSize: 16 });
    return m;
  };
  return { split, model, sasrecFor };
}

const settings = { epochs: 1, lr: 3e-3, batchSize: 8, patience: 5 };

describe('evolution experiment (tiny preset)', () => {
  it('runs every strategy end to end, writes adapters and results, and resumes without redoing work', async () => {
    const { split, model, sasrecFor } = await world();
    const out = tempDir();
    const strategies = Object.values(strategyRegistry());
    const common = {
      split, model, baseAdapter: 'base', lora: { r: 4, dropout: 0 }, strategies, sasrecFor, sasrecSeconds: async (t: number) => 100 + t,
      update: settings, base: settings, history: 4, evalUsers: 0, validUsers: 8, candidates: 5,
      samplers: ['matched' as const], seed: 1, out,
    };
    const r = await runStrategies(common);
    // The Forget filter's training counts in the update time of the strategies that need it, and only theirs.
    for (const u of r.updates) {
      const forget = strategies.find((s) => s.name === u.strategy)!.usesSasrec;
      assert.equal(u.forgetSeconds, forget ? 100 + u.period : undefined, u.strategy);
      if (forget) assert.ok(u.seconds > u.forgetSeconds! && u.seconds < u.forgetSeconds! + 60, `${u.strategy}: ${u.seconds}`);
      // Peak memory per update (the high-water mark reset before each on Linux), not the process's.
      if (process.platform === 'linux') assert.equal(u.peakPerUpdate, true);
    }
    assert.equal(r.updates.length, strategies.length * 2);
    for (const u of r.updates) {
      assert.ok(existsSync(join(out, 'adapters', u.strategy, `p${u.period}`, 'adapter_model.safetensors')), `${u.strategy} p${u.period}`);
      const g = u.eval.matched.groups;
      assert.ok(g.all && g.all.users > 0);
      assert.ok(u.seconds >= 0 && u.peakRssMb > 0);
      if (u.strategy === 'static') assert.equal(u.report.trainableParameters, 0);
      if (u.strategy === 'evorec') {
        assert.equal(u.report.located!.layers.length, 1); // round(0.3 * 3) = 1
        assert.deepEqual(u.report.layers, u.report.located!.layers);
        assert.ok(u.report.trainableParameters < u.report.loraParameters);
      }
      // The random-layer ablation records its draw: one layer of three, a third of the LoRA values trainable.
      if (u.strategy === 'evorec-random') {
        assert.equal(u.report.layers!.length, 1);
        assert.equal(u.report.trainableParameters * 3, u.report.loraParameters);
      }
      if (u.strategy === 'finetune') assert.equal(u.report.layers, undefined);
    }
    // PESO trains every LoRA value, anchored to the adapter of t-1: its P1 adapter ends nearer the base than
    // finetune's (same data, seed and steps), measured by its own proximal term (2.13e-4 against 2.20e-4
    // here: one epoch moves LoRA little, so the margin is small but the run is deterministic).
    const peso = r.updates.find((u) => u.strategy === 'peso' && u.period === 1)!;
    assert.equal(peso.report.trainableParameters, peso.report.loraParameters);
    const config = model.decoder.config;
    const base = model.decoder.adapter('base').namedParameters().map(([, t]) => t);
    const proximal = async (name: string) => {
      const a = await readAdapter(join(out, 'adapters', name, 'p1'), config, name);
      const term = new ProximalTerm(base, 1);
      const saved = base.map((p) => p.data.slice());
      a.namedParameters().forEach(([, p], i) => base[i].data.set(p.data));
      const v = term.loss()!.item();
      saved.forEach((d, i) => base[i].data.set(d));
      return v;
    };
    const [dPeso, dFinetune] = [await proximal('peso'), await proximal('finetune')];
    assert.ok(dPeso < dFinetune, `PESO ${dPeso} vs finetune ${dFinetune}`);
    const lsat = r.updates.filter((u) => u.strategy === 'lsat');
    assert.ok(lsat[1].report.storedParameters! > lsat[0].report.storedParameters!, 'LSAT ranks add up over periods');
    // ... while each period trains one short-term adapter, as many values as finetune trains: a share of 1.
    const ft = r.updates.find((u) => u.strategy === 'finetune')!.report;
    for (const u of lsat) assert.deepEqual([u.report.trainableParameters, u.report.loraParameters], [ft.trainableParameters, ft.loraParameters]);
    // Resume: a second run finds everything done and changes nothing.
    const again = await runStrategies({ ...common, model: (await world()).model });
    assert.deepEqual(again.updates.map((u) => u.eval), r.updates.map((u) => u.eval));
  });

  it('a second training seed copies the baselines, the base at P0 and static from the first, equal to computing them', async () => {
    const { split, model, sasrecFor } = await world();
    const strategies = [staticStrategy, strategyRegistry().finetune];
    const common = {
      split, baseAdapter: 'base', lora: { r: 4, dropout: 0 }, strategies, sasrecFor,
      update: settings, base: settings, history: 4, evalUsers: 0, validUsers: 8, candidates: 5,
      samplers: ['matched' as const, 'uniform' as const], seed: 1,
    };
    const first = await runStrategies({ ...common, model, trainSeed: 1, out: tempDir() });
    // Seed 2 computed in full, and seed 2 with seed 1's run to copy from, each in a fresh model.
    const computed = await runStrategies({ ...common, model: (await world()).model, trainSeed: 2, out: tempDir() });
    const out = tempDir();
    const copied = await runStrategies({ ...common, model: (await world()).model, trainSeed: 2, out, reuse: { results: first, seed: 1, sameBase: true } });
    assert.deepEqual(copied.baselines, computed.baselines);
    const of = (r: typeof first, name: string) => r.updates.filter((u) => u.strategy === name);
    assert.deepEqual(of(copied, 'static').map((u) => [u.period, u.copiedFromSeed, u.eval]), of(computed, 'static').map((u) => [u.period, 1, u.eval]));
    // What trains is never copied: seed 2's finetune is its own, as computed without a run to copy from.
    assert.deepEqual(of(copied, 'finetune').map((u) => [u.copiedFromSeed, u.eval]), of(computed, 'finetune').map((u) => [undefined, u.eval]));
    assert.notDeepEqual(of(copied, 'finetune').map((u) => u.eval), of(first, 'finetune').map((u) => u.eval));
    // The copied static adapters are saved as any other, so that a resumed run finds them.
    for (const t of [1, 2]) assert.ok(existsSync(join(out, 'adapters', 'static', `p${t}`, 'adapter_model.safetensors')));
    // Bases trained per seed differ: then only the model-free baselines are copied.
    const own = await runStrategies({ ...common, strategies: [staticStrategy], model: (await world()).model, trainSeed: 2, out: tempDir(), reuse: { results: first, seed: 1, sameBase: false } });
    assert.deepEqual(own.baselines, computed.baselines);
    assert.deepEqual(of(own, 'static').map((u) => u.copiedFromSeed), [undefined, undefined]);
  });

  it('ranks the full catalogue in the two-stage view: the baselines exactly, each strategy re-ranking SASRec\'s top items', async () => {
    const { split, model, sasrecFor } = await world();
    const out = tempDir();
    const r = await runStrategies({
      split, model, baseAdapter: 'base', lora: { r: 4, dropout: 0 }, strategies: [staticStrategy], sasrecFor,
      update: settings, base: settings, history: 4, evalUsers: 0, validUsers: 8, candidates: 5,
      samplers: ['matched', 'two-stage'], depth: 4, seed: 1, out,
    });
    for (let t = 0; t < split.numPeriods; t++) {
      const b = r.baselines[`p${t}`];
      for (const k of ['random/two-stage', 'popularity/two-stage', 'sasrec/two-stage']) assert.equal(b[k].sampler, 'full', `p${t} ${k}`);
      // Random's expectation on 12 items, none touched by more than the user's history: between 10/12 and 1.
      assert.ok(b['random/two-stage'].groups.all!.metrics['HR@10'] > 0.8);
      // SASRec up to t on every view's sets, beside the probes: HR@1 recomputed here by hand from its scores
      // on the same candidate sets (the positive scored strictly above every negative).
      const sas = b['sasrec/matched'];
      assert.equal(sas.sampler, 'matched');
      const m = await sasrecFor(t);
      const cs = new CandidateSampler(split);
      const byRow = new Map(split.periods[t].test.map((x) => [x.row, x]));
      const hits = sas.sets!.rows.map((row) => {
        const sample = byRow.get(row)!;
        const cands = cs.candidates(sample, t, 'test', { sampler: 'matched', size: 5, seed: 1 });
        const sc = m.score([split.history(sample, m.config.maxLen)], [cands])[0];
        const pos = sc[cands.indexOf(sample.item)];
        return cands.every((c, j) => c === sample.item || sc[j] < pos) ? 1 : 0;
      });
      assert.deepEqual(sas.sets!.metrics['HR@1'], hits, `p${t}`);
    }
    const u = r.updates.find((x) => x.period === 1)!;
    const two = u.eval['two-stage'];
    assert.equal(two.sampler, 'two-stage');
    assert.equal(two.candidates, 4);
    // Paired per-set metrics for the bootstrap, one set per evaluated user, as in the sampled views.
    assert.deepEqual(two.sets!.rows, u.eval.matched.sets!.rows);
    const recall = two.groups.all!.metrics['recall@4'];
    assert.ok(recall > 0 && recall <= 1);
    // A positive outside the retrieved 4 is a miss, so HR@10 of the re-ranked list is at most the recall.
    assert.ok(two.groups.all!.metrics['HR@10'] <= recall + 1e-12);
    await assert.rejects(
      runStrategies({ split, model, baseAdapter: 'base', lora: { r: 4, dropout: 0 }, strategies: [staticStrategy], sasrecFor, update: settings, base: settings, history: 4, evalUsers: 0, validUsers: 8, candidates: 5, samplers: ['two-stage'], seed: 1, out: tempDir() }),
      /^RangeError: the first view is the headline and the validation view, so it must be a candidate sampler, got "two-stage"$/,
    );
  });

  it('a run killed during an update and resumed in a fresh process gives exactly the uninterrupted run (LoRA dropout on)', async () => {
    // Dropout draws masks from the decoder's random stream: a resumed process starts that stream afresh,
    // so each training step must draw from a stream of its own seed and step, not from what ran before.
    const registry = strategyRegistry();
    const common = (out: string) => ({
      split: undefined as never, baseAdapter: 'base', lora: { r: 4, dropout: 0.1 }, sasrecFor: undefined as never,
      update: settings, base: settings, history: 4, evalUsers: 0, validUsers: 8, candidates: 5, samplers: ['matched' as const], seed: 1, out,
    });
    const run = async (out: string, strategies: Strategy[]) => {
      const w = await world({ dropout: 0.1 });
      return runStrategies({ ...common(out), split: w.split, sasrecFor: w.sasrecFor, model: w.model, strategies });
    };
    const whole = tempDir();
    const full = await run(whole, [registry.finetune, registry.evorec]);
    const killed = tempDir();
    const dying: Strategy = {
      ...registry.evorec,
      name: 'evorec',
      async update(ctx) {
        if (ctx.t === 2) throw new Error('killed');
        return registry.evorec.update(ctx);
      },
    };
    await assert.rejects(run(killed, [registry.finetune, dying]), /killed/);
    const resumed = await run(killed, [registry.finetune, registry.evorec]);
    const strip = (r: typeof full) => r.updates.map((u) => ({ s: u.strategy, t: u.period, eval: u.eval, located: u.report.located, bestValid: u.report.bestValid }));
    assert.deepEqual(strip(resumed), strip(full));
    const config = (await world()).model.decoder.config;
    for (const name of ['finetune', 'evorec']) {
      const a = await readAdapter(join(whole, 'adapters', name, 'p2'), config, name);
      const b = await readAdapter(join(killed, 'adapters', name, 'p2'), config, name);
      assert.deepEqual(b.namedParameters().map(([k, p]) => [k, Array.from(p.data)]), a.namedParameters().map(([k, p]) => [k, Array.from(p.data)]), name);
    }
  });

  it('validation with inactive users adds as many of their held-out validation targets, none ever trained on', async () => {
    const { split } = await world();
    const t = 2;
    const plain = validationSample(split, t, { validUsers: 6, seed: 1, candidates: 5, sampler: 'matched' });
    const both = validationSample(split, t, { validUsers: 6, seed: 1, candidates: 5, sampler: 'matched', inactive: true });
    assert.deepEqual(both.samples.slice(0, plain.samples.length), plain.samples, 'the active users\' targets are the same');
    const extra = both.samples.slice(plain.samples.length);
    assert.ok(extra.length > 0 && extra.length <= plain.samples.length, `${extra.length} inactive targets for ${plain.samples.length} active`);
    const trained = new Set(split.trainingUpTo(t).map((x) => x.row));
    const inactive = new Set(split.periods[t].test.filter((x) => x.group === 'inactive').map((x) => x.user));
    for (const x of extra) {
      assert.ok(inactive.has(x.user), `user ${x.user} is inactive at P${t}`);
      assert.equal(x.pos, split.heldOut(x.user, t).valid);
      assert.ok(x.row < split.periods[t].start, 'the target lies before the period (rows are chronological)');
      assert.ok(!trained.has(x.row), 'never a training target');
    }
    assert.deepEqual(inactiveValidation(split, t, 3, 1), extra.slice(0, 3), 'seeded: a smaller count is a prefix');
    assert.equal(new Set(extra.map((x) => x.user)).size, extra.length, 'one target per user');
    assert.deepEqual(inactiveValidation(split, 1, 0, 1), []);
  });

  it('update budgets: epochs 0 keeps the adapter of t-1 bit for bit, and the budget best on validation is kept', async () => {
    const registry = strategyRegistry();
    const strategies = [registry.finetune, registry.evorec, registry.lsat, registry.retrain];
    const run = async (budgets: UpdateBudget[]) => {
      const { split, model, sasrecFor } = await world();
      const out = tempDir();
      const r = await runStrategies({
        split, model, baseAdapter: 'base', lora: { r: 4, dropout: 0 }, strategies, sasrecFor, update: settings, base: settings, budgets,
        history: 4, evalUsers: 0, validUsers: 8, candidates: 5, samplers: ['matched'], seed: 1, out,
      });
      const weights = async (name: string, t: number) => (await readAdapter(join(out, 'adapters', name, `p${t}`), model.decoder.config, name)).namedParameters().map(([k, p]) => [k, Array.from(p.data)]);
      const base = model.decoder.adapter('base').namedParameters().map(([k, p]) => [k, Array.from(p.data)]);
      return { r, weights, base };
    };
    const keep = await run([{ epochs: 0 }]);
    for (const u of keep.r.updates) {
      assert.equal(u.budget!.chosen, 'keep');
      assert.equal(u.report.steps, 0);
      assert.equal(u.report.samplesSeen, 0);
      assert.deepEqual(await keep.weights(u.strategy, u.period), keep.base, `${u.strategy} P${u.period}: the base adapter, bit for bit`);
    }
    const both = await run([{ epochs: 0 }, { lr: 3e-3, epochs: 1 }]);
    for (const u of both.r.updates) {
      const { chosen, scores } = u.budget!;
      assert.deepEqual(Object.keys(scores), ['keep', '0.003:1']);
      assert.equal(chosen, scores['0.003:1'] > scores.keep ? '0.003:1' : 'keep', `${u.strategy} P${u.period}: the best validation, ties to the first`);
      assert.ok(u.report.samplesSeen > 0, 'the trials\' samples count in the cost, whichever is kept');
      const w = await both.weights(u.strategy, u.period);
      if (chosen === 'keep') {
        const prev = u.period === 1 ? both.base : await both.weights(u.strategy, u.period - 1);
        assert.deepEqual(w, prev);
      } else assert.notDeepEqual(w, both.base);
    }
    // Here P1 trains everywhere and P2 keeps LSAT's and retrain's adapters of P1: both branches run.
    assert.deepEqual(both.r.updates.map((u) => u.budget!.chosen === 'keep'), [false, false, false, false, false, false, true, true]);
    assert.deepEqual(parseBudgets('0, 4e-4:1,1e-3:2'), [{ epochs: 0 }, { lr: 4e-4, epochs: 1 }, { lr: 1e-3, epochs: 2 }]);
    assert.throws(() => parseBudgets('1e-3'), /^RangeError: --update-budgets: expected lr:epochs pairs \(e\.g\. 1e-3:1\) or 0 \(keep the adapter of t-1\), got "1e-3"$/);
    assert.throws(() => parseBudgets('-1:2'), /got "-1:2"$/);
  });

  it('adds strategies to an existing run without redoing the finished ones', async () => {
    const { split, model, sasrecFor } = await world();
    const out = tempDir();
    const registry = strategyRegistry();
    const common = {
      split, baseAdapter: 'base', lora: { r: 4, dropout: 0 }, sasrecFor,
      update: settings, base: settings, history: 4, evalUsers: 0, validUsers: 8, candidates: 5, samplers: ['matched' as const], seed: 1, out,
    };
    const first = await runStrategies({ ...common, model, strategies: [registry.static, registry.finetune] });
    const more = await runStrategies({ ...common, model: (await world()).model, strategies: [registry.static, registry.finetune, registry.evorec] });
    assert.deepEqual(more.strategies, ['static', 'finetune', 'evorec']);
    assert.equal(more.updates.length, 6);
    const finetune = (r: typeof first) => r.updates.filter((u) => u.strategy === 'finetune');
    assert.deepEqual(finetune(more), finetune(first));
  });

  it('an EvoRec update changes only the located layers\' LoRA parameters, never the backbone', async () => {
    const { split, model, sasrecFor } = await world();
    const backbone = new Map(model.decoder.namedParameters().filter(([n]) => !n.includes('lora_')).map(([n, t]) => [n, t.data.slice()]));
    const base = new Map(model.decoder.adapter('base').namedParameters().map(([n, t]) => [n, t.data.slice()]));
    const out = tempDir();
    const r = await runStrategies({
      split, model, baseAdapter: 'base', lora: { r: 4, dropout: 0 }, strategies: [evorecStrategy()], sasrecFor,
      update: settings, base: settings, history: 4, evalUsers: 0, validUsers: 8, candidates: 5, samplers: ['matched'], seed: 1, out,
    });
    const p1 = r.updates.find((u) => u.period === 1)!;
    assert.ok(p1.report.trainSamples > 0 && p1.report.forgotten!.items > 0);
    const located = p1.report.located!.layers;
    const saved = await readAdapter(join(out, 'adapters', 'evorec', 'p1'), model.decoder.config, 'check');
    let changed = 0;
    for (const [name, t] of saved.namedParameters()) {
      const layer = Number(/layers\.(\d+)\./.exec(name)![1]);
      const same = t.data.every((v, i) => v === base.get(name)![i]);
      if (located.includes(layer)) changed += same ? 0 : 1;
      else assert.ok(same, `${name} is outside the located layers ${located} but changed`);
    }
    assert.ok(changed > 0, 'the located layers were trained');
    for (const [name, data] of backbone) {
      assert.ok(model.decoder.namedParameters().find(([n]) => n === name)![1].data.every((v, i) => v === data[i]), `backbone ${name} changed`);
    }
  });

  it('validates on the headline sampler\'s candidate sets (the first of `samplers`)', async () => {
    // A strategy that trains nothing and reads the validation score: with the same model and users, the
    // score can only differ between two runs if their validation candidate sets differ.
    const scoreWith = async (samplers: ('matched' | 'uniform' | 'popularity')[]) => {
      const { split, model, sasrecFor } = await world();
      const seen: number[] = [];
      const probe = {
        name: 'probe',
        description: 'reads the validation score',
        update: async (ctx: Parameters<typeof staticStrategy.update>[0]) => {
          seen.push(ctx.validate((s) => ctx.split.history(s, 4)));
          return staticStrategy.update(ctx);
        },
      };
      await runStrategies({
        split, model, baseAdapter: 'base', lora: { r: 4, dropout: 0 }, strategies: [probe], sasrecFor,
        update: settings, base: settings, history: 4, evalUsers: 0, validUsers: 8, candidates: 5, samplers, seed: 1, out: tempDir(),
      });
      return seen;
    };
    const matched = await scoreWith(['matched']);
    const uniform = await scoreWith(['uniform', 'matched']);
    assert.deepEqual(await scoreWith(['matched', 'uniform']), matched, 'only the first sampler counts');
    assert.notDeepEqual(uniform, matched);
  });

  it('evaluates active users up to the cap and as many inactive users', async () => {
    const { split } = await world();
    for (const t of [1, 2]) {
      const count = (xs: { group?: string }[], g: string) => xs.filter((s) => s.group === g).length;
      const all = split.periods[t].test;
      assert.ok(count(all, 'active') > 3 && count(all, 'inactive') > 3, 'the tiny world has enough of both');
      const capped = evalSample(split, t, 3, 1);
      assert.equal(count(capped, 'active'), 3);
      assert.equal(count(capped, 'inactive'), 3);
      const wide = evalSample(split, t, 1000, 1);
      assert.equal(count(wide, 'active'), count(all, 'active'), 'every active user under the cap');
      assert.equal(count(wide, 'inactive'), Math.min(count(all, 'inactive'), count(all, 'active')));
      assert.deepEqual(evalSample(split, t, 0, 1), all);
      assert.deepEqual(evalSample(split, t, 3, 1), capped, 'fixed by the seed');
    }
  });
});
