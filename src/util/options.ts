/**
 * Merges options over defaults, skipping keys whose value is undefined: `{ ...defaults, ...options }`
 * would let `{ seed: undefined }` erase a default, which silently changes results.
 */
export function withDefaults<T extends object>(defaults: T, options: Partial<T> | undefined): T {
  const out = { ...defaults };
  if (options) for (const [k, v] of Object.entries(options)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
