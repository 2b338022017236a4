/**
 * evorec: keep an LLM-based sequential recommender current with EvoRec (Locate-Forget-Update).
 *
 * The library entry point: the recommender-level API flat (data, evaluation, models, evolution,
 * reports, the whole experiment as `runExperiment`), and each lower layer as a namespace (`core`, `io`, `tokenizer`, `nn`, `train`).
 */
export * from './data/index.js';
export * from './eval/evaluate.js';
export * from './eval/metrics.js';
export * from './models/prompt.js';
export * from './models/llmrec.js';
export * from './models/llmrec-io.js';
export * from './models/llmrec-train.js';
export * from './models/sasrec.js';
export * from './models/sasrec-io.js';
export * from './models/sasrec-train.js';
export * from './evolve/locate.js';
export * from './evolve/forget.js';
export * from './evolve/consistency.js';
export * from './evolve/strategy.js';
export * from './evolve/strategies.js';
export * from './evolve/period.js';
export * from './evolve/runner.js';
export * from './report/experiment-report.js';
export * from './report/experiment-files.js';
export * from './experiment/experiment.js';
export * from './experiment/update-job.js';
export * as core from './core/index.js';
export * as io from './io/index.js';
export * as tokenizer from './tokenizer/index.js';
export * as nn from './nn/index.js';
export * as train from './train/index.js';
