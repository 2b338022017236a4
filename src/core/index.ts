/**
 * evorec compute core: Float32 tensors, tape-based reverse-mode autograd, the ops that decoder
 * transformers, LoRA and SASRec need, AdamW, LR schedules and checkpoints. See docs/engine.md.
 */
export { Tensor, tensor, zeros, ones, full, randn, rand, parameter, shapeSize, sameShape } from './tensor.js';
export type { GradNode } from './tensor.js';
export { backward, noGrad, enableGrad, isGradEnabled, needsGrad, record, gradBuffer, addGrad, recycleGrad } from './autograd.js';
export { withArena, floats, inArena, releaseFloats, clearArena, arenaStats, setArenaLimit } from './arena.js';
export { Rng, manualSeed, getDefaultRng } from './random.js';
export * from './ops/index.js';
export { AdamW, weightDecayGroups, gradNorm, clipGradNorm, scaleGrads } from './optim.js';
export type { ParamGroup, AdamWOptions, AdamState } from './optim.js';
export { lrSchedule } from './schedule.js';
export type { Schedule, ScheduleOptions } from './schedule.js';
export { saveCheckpoint, loadCheckpoint, readCheckpoint } from './checkpoint.js';
export type { CheckpointHeader, CheckpointEntry, SaveOptions, LoadOptions } from './checkpoint.js';
export { getKernels, setKernels, availableKernels, kernelInfo, setThreads, tsKernels, loadNativeKernels, nativeLoadError } from './kernels/index.js';
export type { Kernels, KernelInfo } from './kernels/index.js';
