/**
 * An interaction log with interned ids, in columnar typed arrays so that 10^6 interactions cost a few
 * megabytes. Row order is meaningful: it is the file order until `sortChronologically` is applied, and
 * ties in time are always broken by file order.
 */
import type { RawInteraction, RawItem } from './records.js';

export class Dataset {
  constructor(
    readonly name: string,
    /** External user ids, by user index. */
    readonly userIds: string[],
    /** External item ids, by item index. */
    readonly itemIds: string[],
    /** Item titles by item index; '' where the catalogue has none. */
    readonly titles: string[],
    readonly users: Int32Array,
    readonly items: Int32Array,
    readonly timestamps: Float64Array,
    /** Ratings by row, or null when the source has none. */
    readonly ratings: Float32Array | null,
  ) {}

  get numInteractions(): number {
    return this.users.length;
  }
  get numUsers(): number {
    return this.userIds.length;
  }
  get numItems(): number {
    return this.itemIds.length;
  }

  /** A new dataset holding the rows `keep` (in that order), with unused users and items dropped. */
  select(keep: ArrayLike<number>, name = this.name): Dataset {
    const userMap = new Int32Array(this.numUsers).fill(-1);
    const itemMap = new Int32Array(this.numItems).fill(-1);
    const userIds: string[] = [];
    const itemIds: string[] = [];
    const titles: string[] = [];
    const n = keep.length;
    const users = new Int32Array(n);
    const items = new Int32Array(n);
    const timestamps = new Float64Array(n);
    const ratings = this.ratings ? new Float32Array(n) : null;
    for (let k = 0; k < n; k++) {
      const r = keep[k];
      const u = this.users[r];
      const it = this.items[r];
      if (userMap[u] < 0) {
        userMap[u] = userIds.length;
        userIds.push(this.userIds[u]);
      }
      if (itemMap[it] < 0) {
        itemMap[it] = itemIds.length;
        itemIds.push(this.itemIds[it]);
        titles.push(this.titles[it]);
      }
      users[k] = userMap[u];
      items[k] = itemMap[it];
      timestamps[k] = this.timestamps[r];
      if (ratings) ratings[k] = this.ratings![r];
    }
    return new Dataset(name, userIds, itemIds, titles, users, items, timestamps, ratings);
  }

  /** The rows ordered by timestamp, ties kept in file order (a stable sort). */
  sortChronologically(): Dataset {
    const order = Array.from({ length: this.numInteractions }, (_, i) => i);
    const ts = this.timestamps;
    order.sort((a, b) => ts[a] - ts[b] || a - b);
    return this.select(order);
  }

  /** Rows of each user, in row order. */
  rowsByUser(): Int32Array[] {
    const counts = new Int32Array(this.numUsers);
    for (let r = 0; r < this.numInteractions; r++) counts[this.users[r]]++;
    const out = Array.from(counts, (c) => new Int32Array(c));
    const fill = new Int32Array(this.numUsers);
    for (let r = 0; r < this.numInteractions; r++) {
      const u = this.users[r];
      out[u][fill[u]++] = r;
    }
    return out;
  }

  /** Builds a dataset from streams of interactions and (optionally) catalogue entries. */
  static async fromStreams(
    name: string,
    interactions: AsyncIterable<RawInteraction>,
    catalogue?: AsyncIterable<RawItem>,
  ): Promise<Dataset> {
    const userIndex = new Map<string, number>();
    const itemIndex = new Map<string, number>();
    const userIds: string[] = [];
    const itemIds: string[] = [];
    let cap = 1 << 16;
    let users = new Int32Array(cap);
    let items = new Int32Array(cap);
    let timestamps = new Float64Array(cap);
    let ratings: Float32Array | null = new Float32Array(cap);
    let n = 0;
    let anyRating = false;
    for await (const r of interactions) {
      if (n === cap) {
        cap *= 2;
        users = grow(users, cap);
        items = grow(items, cap);
        timestamps = grow(timestamps, cap);
        ratings = grow(ratings!, cap);
      }
      let u = userIndex.get(r.user);
      if (u === undefined) {
        u = userIds.length;
        userIndex.set(r.user, u);
        userIds.push(r.user);
      }
      let it = itemIndex.get(r.item);
      if (it === undefined) {
        it = itemIds.length;
        itemIndex.set(r.item, it);
        itemIds.push(r.item);
      }
      users[n] = u;
      items[n] = it;
      timestamps[n] = r.timestamp;
      if (r.rating !== undefined) anyRating = true;
      ratings![n] = r.rating ?? NaN;
      n++;
    }
    const titles = new Array<string>(itemIds.length).fill('');
    if (catalogue) {
      for await (const c of catalogue) {
        const it = itemIndex.get(c.item);
        // The first title seen wins; catalogue rows for items nobody interacted with are ignored.
        if (it !== undefined && titles[it] === '') titles[it] = c.title;
      }
    }
    return new Dataset(
      name,
      userIds,
      itemIds,
      titles,
      users.slice(0, n),
      items.slice(0, n),
      timestamps.slice(0, n),
      anyRating ? ratings!.slice(0, n) : null,
    );
  }
}

function grow<T extends Int32Array | Float64Array | Float32Array>(a: T, cap: number): T {
  const b = new (a.constructor as new (n: number) => T)(cap);
  b.set(a);
  return b;
}
