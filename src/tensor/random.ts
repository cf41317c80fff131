// Seeded randomness. tfjs draws every unseeded random number (initialisers, dropout,
// shuffles in model.fit) from Math.random, so seeding it makes whole runs reproducible.

/** sfc32 generator over a 32-bit seed: fast, well-mixed, and the same in every JS engine. */
export function makeRng(seed: number): () => number {
  let a = 0x9e3779b9,
    b = 0x243f6a88,
    c = 0xb7e15162,
    d = seed >>> 0;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    const r = (t + d) | 0;
    c = (c + r) | 0;
    return (r >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

/** Replaces Math.random with a generator seeded from `seed` (the whole process shares it). */
export function seedEverything(seed: number): void {
  Math.random = makeRng(seed);
}

/** Fisher–Yates shuffle of 0..n-1. */
export function permutation(n: number, rng: () => number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}
