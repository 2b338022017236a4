/** Learning-rate schedules: step -> learning rate (step counts from 0). */

export interface ScheduleOptions {
  kind: 'constant' | 'linear' | 'cosine';
  /** Peak learning rate (reached at the end of warm-up). */
  lr: number;
  /** Linear warm-up from 0 over this many steps (default 0). */
  warmupSteps?: number;
  /** Total steps (required for linear and cosine decay). */
  totalSteps?: number;
  /** Final learning rate for linear/cosine decay (default 0). */
  minLr?: number;
}

export type Schedule = (step: number) => number;

/**
 * Warm-up then constant / linear decay / cosine decay, matching Hugging Face's
 * get_{constant,linear,cosine}_schedule_with_warmup (plus an optional floor minLr).
 */
export function lrSchedule(opts: ScheduleOptions): Schedule {
  const warm = opts.warmupSteps ?? 0;
  const minLr = opts.minLr ?? 0;
  const total = opts.totalSteps ?? 0;
  if (opts.kind !== 'constant' && !(total > 0)) throw new Error(`lrSchedule: ${opts.kind} needs totalSteps`);
  return (step: number): number => {
    if (step < warm) return (opts.lr * step) / warm;
    if (opts.kind === 'constant') return opts.lr;
    const progress = Math.min(1, Math.max(0, (step - warm) / Math.max(1, total - warm)));
    const f = opts.kind === 'linear' ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
    return minLr + (opts.lr - minLr) * f;
  };
}
