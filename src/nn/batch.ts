/** Padding token sequences into [B, T] batches with an attention mask. */

export interface PaddedBatch {
  ids: Int32Array;
  /** 1 = real token, 0 = padding. */
  attentionMask: Uint8Array;
  batch: number;
  seqLen: number;
}

/**
 * Pad rows to the longest (or `length`) on the left (default; what decoding from a shared position
 * wants) or the right. Rows longer than `length` keep their last `length` tokens (left) or first (right).
 */
export function padBatch(rows: readonly (readonly number[])[], opts: { padId: number; side?: 'left' | 'right'; length?: number }): PaddedBatch {
  const side = opts.side ?? 'left';
  const T = opts.length ?? Math.max(1, ...rows.map((r) => r.length));
  const B = rows.length;
  const ids = new Int32Array(B * T).fill(opts.padId);
  const attentionMask = new Uint8Array(B * T);
  rows.forEach((r0, b) => {
    const r = r0.length > T ? (side === 'left' ? r0.slice(r0.length - T) : r0.slice(0, T)) : r0;
    const start = side === 'left' ? T - r.length : 0;
    for (let i = 0; i < r.length; i++) {
      ids[b * T + start + i] = r[i];
      attentionMask[b * T + start + i] = 1;
    }
  });
  return { ids, attentionMask, batch: B, seqLen: T };
}
