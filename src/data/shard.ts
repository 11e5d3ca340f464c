// Splits an epoch's sample order across data-parallel ranks as torch's DistributedSampler does:
// rank r takes positions r, r + W, r + 2W, ... of the (shared, seeded) order. Training pads the
// order to a multiple of W by repeating its head, so every rank runs the same number of steps;
// evaluation pads nothing, so every sample is counted exactly once.

export interface Shard {
  rank: number;
  worldSize: number;
}

/** This rank's part of `order`. */
export function shardOrder(order: Int32Array, shard: Shard, pad: boolean): Int32Array {
  const { rank, worldSize: w } = shard;
  const n = order.length;
  const total = pad ? Math.ceil(n / w) * w : n;
  const count = total > rank ? Math.ceil((total - rank) / w) : 0;
  const out = new Int32Array(count);
  // Padding repeats the head (the whole order again while it is shorter than the gap).
  for (let i = 0, p = rank; i < count; i++, p += w) out[i] = order[n === 0 ? 0 : p % n]!;
  return out;
}

/** Samples this rank sees per epoch. */
export function shardLength(n: number, shard: Shard, pad: boolean): number {
  const total = pad ? Math.ceil(n / shard.worldSize) * shard.worldSize : n;
  return total > shard.rank ? Math.ceil((total - shard.rank) / shard.worldSize) : 0;
}
