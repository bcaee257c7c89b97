// @internal A small seeded generator (mulberry32): the same draws on every platform, for the search's configurations
// and for the seeded draws of the benchmarks and tests.

/** Uniform numbers in [0, 1) from `seed`. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `k` items of `list` drawn without replacement (a seeded Fisher–Yates shuffle's first k). */
export function seededSample<T>(list: readonly T[], k: number, seed: number): T[] {
  const rand = seededRandom(seed);
  const a = [...list];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, k);
}
