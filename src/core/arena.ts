/**
 * Reused storage for activations and gradients inside a scope (`withArena`), e.g. one training step
 * or one chunk of candidate scoring.
 *
 * Every op allocates its output (and its intermediate gradients) with `floats(n)`. Outside a scope
 * that is `new Float32Array(n)`. Inside one, large arrays come from free lists of earlier scopes'
 * buffers (the smallest free one that holds the request; a new one gets 25% headroom, rounded up to
 * 2^e x {1, 1.25, 1.5, 1.75}), zero-filled unless the caller overwrites
 * them; when the outermost scope ends, everything it handed out goes back to the free lists. A
 * step then allocates no fresh ArrayBuffers once the lists are warm: no page faults on new memory,
 * and none of the major GCs that V8 starts for "external memory pressure" (a training step of the
 * small preset allocates ~0.5 GB of activations; each such GC marks the whole JS heap, on the same
 * two cores as the GEMM threads).
 *
 * The contract: nothing allocated inside a scope may be used after it ends. Ops return their
 * results in arena memory, so a scope must copy out what it returns (the callers in this package —
 * LmTrainer.trainStep, LLMRec scoring — return plain numbers and fresh arrays). Parameter (leaf)
 * gradients are never arena memory (see autograd.ts), and intermediate gradients go back to the
 * lists as soon as backward frees them.
 */

const MIN_FLOATS = 4096; // smaller arrays: V8 allocates them cheaply on its own heap
const HEADROOM = 1.25;

let depth = 0;
/** Free buffers by capacity (floats), and the capacities that have any, ascending. */
const free = new Map<number, ArrayBuffer[]>();
const caps: number[] = [];
/** Buffers handed out in the current scope. */
let used = new Set<ArrayBuffer>();
let freeBytes = 0;
/** Bytes of fresh buffers the arena has allocated (for the bench and tests). */
let freshBytes = 0;
/** Free-list bytes kept after a scope (beyond this the lists are dropped). */
let keepBytes = 2 ** 31;

function sizeClass(n: number): number {
  const e = Math.floor(Math.log2(n));
  const base = 2 ** e;
  if (base === n) return n;
  const q = base / 4;
  return base + Math.ceil((n - base) / q) * q;
}

/** Is a scope active (allocations come from the arena)? */
export function inArena(): boolean {
  return depth > 0;
}

/**
 * A Float32Array of n elements: zero-filled (as `new Float32Array(n)`), or with arbitrary contents
 * when `zero` is false and the caller overwrites every element. From the arena inside a scope.
 */
export function floats(n: number, zero = true): Float32Array {
  if (depth === 0 || n < MIN_FLOATS) return new Float32Array(n);
  // best fit: the smallest free buffer that holds n (one from a larger step serves a smaller one)
  const cls = sizeClass(n);
  let lo = 0, hi = caps.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (caps[mid] < cls) lo = mid + 1;
    else hi = mid;
  }
  let ab: ArrayBuffer | null = null;
  if (lo < caps.length) {
    const list = free.get(caps[lo])!;
    ab = list.pop()!;
    if (list.length === 0) {
      free.delete(caps[lo]);
      caps.splice(lo, 1);
    }
    freeBytes -= ab.byteLength;
  }
  const reused = ab !== null;
  if (!ab && lo > 0) {
    // a miss with smaller buffers free: they are likely this role's from a smaller step; drop the
    // largest of them, so that growing steps (batches sorted by length) do not pile up memory
    const c = caps[lo - 1];
    const list = free.get(c)!;
    freeBytes -= list.pop()!.byteLength;
    if (list.length === 0) {
      free.delete(c);
      caps.splice(lo - 1, 1);
    }
  }
  if (!ab) {
    // with headroom, so that the same role in a slightly larger step (batches sorted by length, or a
    // longer prompt) finds it again
    const cap = sizeClass(Math.ceil(n * HEADROOM));
    ab = new ArrayBuffer(cap * 4);
    freshBytes += cap * 4;
  }
  used.add(ab);
  const v = new Float32Array(ab, 0, n);
  if (zero && reused) v.fill(0); // a fresh ArrayBuffer is zeroed already
  return v;
}

/** Hand `a` back before the scope ends (a dead intermediate gradient); a no-op for other arrays. */
export function releaseFloats(a: Float32Array | null): void {
  if (!a || depth === 0) return;
  const ab = a.buffer as ArrayBuffer;
  if (!used.delete(ab)) return;
  pushFree(ab);
}

function pushFree(ab: ArrayBuffer): void {
  const cls = ab.byteLength / 4;
  let list = free.get(cls);
  if (!list) {
    free.set(cls, (list = []));
    let i = 0;
    while (i < caps.length && caps[i] < cls) i++;
    caps.splice(i, 0, cls);
  }
  list.push(ab);
  freeBytes += ab.byteLength;
}

/**
 * Run `fn` with arena allocation; when the outermost scope ends, its buffers are reused by later
 * scopes. Nested calls join the outer scope. The result must not reference arena memory.
 */
export function withArena<T>(fn: () => T): T {
  if (depth > 0) return fn();
  depth++;
  try {
    return fn();
  } finally {
    depth--;
    const done = used;
    used = new Set();
    for (const ab of done) pushFree(ab);
    if (freeBytes > keepBytes) clearArena();
  }
}

/** Drop every free buffer (memory goes back to the system at the next GC). */
export function clearArena(): void {
  free.clear();
  caps.length = 0;
  freeBytes = 0;
}

/** Bytes held in free lists, the cap kept between scopes (default 2 GiB), and fresh bytes allocated so far. */
export function arenaStats(): { freeBytes: number; keepBytes: number; freshBytes: number } {
  return { freeBytes, keepBytes, freshBytes };
}

export function setArenaLimit(bytes: number): void {
  keepBytes = Math.max(0, bytes);
  if (freeBytes > keepBytes) clearArena();
}
