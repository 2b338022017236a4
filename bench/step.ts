/**
 * Times one training step (forward, backward, AdamW) of the bench model in this process and prints
 * one JSON line. Used by bench/run.ts in a child process per configuration so that peak RSS is
 * per configuration. Usage: node --import tsx bench/step.ts full|lora [steps] [warmup]
 */
import { AdamW, backward, kernelInfo, Rng } from '../src/core/index.js';
import { TinyLlama } from './model.js';
import { BENCH } from './config.js';

const mode = process.argv[2] === 'lora' ? 'lora' : 'full';
const steps = Number(process.argv[3] ?? 20);
const warmup = Number(process.argv[4] ?? 3);
const c = BENCH;
const model = new TinyLlama(c.model, 0);
const params = mode === 'lora' ? model.addLora(c.loraRank, 2 * c.loraRank) : model.trainable();
const opt = new AdamW(params, { lr: 1e-3, weightDecay: 0.01 });
const rng = new Rng(42);
const n = c.batch * c.seq;
const ids = new Int32Array(n);
const targets = new Int32Array(n);
for (let i = 0; i < n; i++) ids[i] = rng.int(c.model.vocab);
for (let b = 0; b < c.batch; b++) {
  for (let t = 0; t < c.seq; t++) targets[b * c.seq + t] = t + 1 < c.seq ? ids[b * c.seq + t + 1] : -100;
}
const times: number[] = [];
const phases = { forward: 0, backward: 0, optimizer: 0 };
let loss = 0;
for (let s = 0; s < warmup + steps; s++) {
  const t0 = performance.now();
  opt.zeroGrad();
  const l = model.loss(ids, targets, c.batch, c.seq);
  const t1 = performance.now();
  backward(l);
  const t2 = performance.now();
  opt.step();
  const t3 = performance.now();
  loss = l.item();
  if (s >= warmup) {
    times.push(t3 - t0);
    phases.forward += t1 - t0;
    phases.backward += t2 - t1;
    phases.optimizer += t3 - t2;
  }
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
for (const k of Object.keys(phases) as (keyof typeof phases)[]) phases[k] /= steps;
console.log(JSON.stringify({
  mode,
  kernels: kernelInfo(),
  trainable: params.reduce((s, p) => s + p.size, 0),
  median_ms: median,
  min_ms: times[0],
  phases_ms: phases,
  loss,
  peak_rss_mb: process.resourceUsage().maxRSS / 1024,
}));
