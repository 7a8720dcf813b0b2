// The statistics of a fair comparison (src/core/stats.ts): the t distribution against independent
// references, the intervals against the textbook formula, and the test's error rates on simulated seeds.
//
// Reference constants were computed outside this repository with mpmath at 50 significant digits (the
// regularized incomplete beta function, and for quantiles a root of it; the quantiles at the double nearest
// the written probability, which is what the function receives); df = 1, 2 and 4 also agree with their
// closed forms, and the 1- and 2-df closed forms are checked here over many probabilities. The
// simulations draw from a fixed-seed generator (mulberry32 + Box–Muller), so every count is deterministic.
import { describe, expect, it } from 'vitest';
import { rng } from './helpers';
import {
  excludes,
  mean,
  pairedDifference,
  pairedLogRatio,
  sampleSd,
  studentTCdf,
  studentTQuantile,
  tInterval,
  type Interval,
} from '../../../src/core/stats';

/** |actual − expected| ≤ tol · |expected|. */
function expectRelative(actual: number, expected: number, tol: number): void {
  const err = Math.abs(actual - expected) / Math.abs(expected);
  if (!(err <= tol)) throw new Error(`expected ${expected}, got ${actual} (relative error ${err.toExponential(2)} > ${tol})`);
}

/** Standard normal draws from a seeded generator (Box–Muller). */
function normals(seed: number): () => number {
  const uniform = rng(seed);
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const z = spare;
      spare = null;
      return z;
    }
    const u = 1 - uniform(); // (0, 1]
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

function draw(gauss: () => number, n: number, mu = 0, sigma = 1): number[] {
  return Array.from({ length: n }, () => mu + sigma * gauss());
}

describe("Student's t distribution", () => {
  it('quantiles equal the reference values to 1e-12', () => {
    const cases: [p: number, df: number, t: number][] = [
      [0.975, 1, 12.706204736174694],
      [0.975, 2, 4.302652729749462],
      [0.975, 4, 2.7764451051977934],
      [0.975, 9, 2.262157162798205],
      [0.975, 29, 2.045229642132704],
      [0.995, 5, 4.032142983555227],
      [0.95, 4, 2.1318467863266495],
      [0.9, 3, 1.6377443536962104],
      [0.999, 100, 3.1737394937387826],
      [0.975, 0.5, 164.55767348048823],
      [0.975, 2.5, 3.5746548420036817],
    ];
    for (const [p, df, t] of cases) {
      expectRelative(studentTQuantile(p, df), t, 1e-12);
      expectRelative(studentTQuantile(1 - p, df), -t, 1e-12);
    }
  });

  it('the CDF equals the reference values to 1e-14', () => {
    const cases: [t: number, df: number, p: number][] = [
      [-3, 1, 0.10241638234956672],
      [0.5, 1, 0.6475836176504333],
      [1, 2, 0.7886751345948129],
      [-2, 3, 0.0696629842794216],
      [2.5, 4.7, 0.9712039203265663],
      [-1.2, 9, 0.13038659869523084],
      [4, 29, 0.9997999680271737],
      [-6, 30, 6.971384383602371e-07],
      [0.01, 5, 0.5037959909787091],
      [-40, 2, 0.0003122073360923703],
      [3, 0.5, 0.8163459220070283],
      [-2, 1000, 0.02288517324662582],
      [1.5, 1e6, 0.9331926408816036],
      [-8, 200, 4.9396004546653196e-14],
    ];
    for (const [t, df, p] of cases) expectRelative(studentTCdf(t, df), p, 1e-14);
    expect(studentTCdf(0, 3)).toBe(0.5);
    expect(studentTCdf(Infinity, 3)).toBe(1);
    expect(studentTCdf(-Infinity, 3)).toBe(0);
  });

  it('agrees with the closed forms for 1 and 2 degrees of freedom', () => {
    // Upper tail q: df = 1, t = 1 / tan(π q); df = 2, t = (1 − 2q) / √(2q(1 − q)).
    for (let k = 1; k < 500; k++) {
      const q = k / 1000;
      expectRelative(studentTQuantile(1 - q, 1), 1 / Math.tan(Math.PI * q), 1e-13);
      expectRelative(studentTQuantile(1 - q, 2), (1 - 2 * q) / Math.sqrt(2 * q * (1 - q)), 1e-13);
      expectRelative(studentTQuantile(q, 2), -(1 - 2 * q) / Math.sqrt(2 * q * (1 - q)), 1e-13);
    }
  });

  it('the quantile inverts the CDF over many probabilities and degrees of freedom (any positive real)', () => {
    const dfs = [0.2, 0.5, 1, 1.5, 2, 2.5, 3, 4, 4.7, 7, 9, 15, 29, 30, 60, 100, 333.3, 1e3, 1e4, 1e6];
    const ps = [1e-12, 1e-8, 1e-5, 1e-3, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.45, 0.49, 0.4999, 0.5001, 0.51, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999, 0.99999];
    let worst = 0;
    for (const df of dfs) {
      for (const p of ps) {
        const t = studentTQuantile(p, df);
        expect(Number.isFinite(t)).toBe(true);
        expect(Math.sign(t)).toBe(Math.sign(p - 0.5));
        // Relative to the smaller tail below the median; near 1 the CDF is 1 − tail, good to an ulp of p.
        const back = studentTCdf(t, df);
        const err = p < 0.5 ? Math.abs(back - p) / p : Math.abs(back - p) / Math.max(1 - p, Number.EPSILON * 8);
        worst = Math.max(worst, err);
        if (!(err <= 5e-14)) throw new Error(`df ${df}, p ${p}: quantile ${t}, CDF back ${back}`);
      }
    }
    expect(worst).toBeLessThan(5e-14); // measured: 9.2e-15
    expect(studentTQuantile(0.5, 3)).toBe(0);
    expect(studentTQuantile(0, 3)).toBe(-Infinity);
    expect(studentTQuantile(1, 3)).toBe(Infinity);
  });

  it('is exactly symmetric and increasing', () => {
    for (const df of [0.7, 2, 5, 40]) {
      let previous = -Infinity;
      for (let k = 1; k < 1024; k++) {
        const p = k / 1024; // 1 − p is exact
        const t = studentTQuantile(p, df);
        expect(studentTQuantile(1 - p, df) === -t).toBe(true);
        expect(t).toBeGreaterThan(previous);
        previous = t;
      }
    }
  });

  it('rejects impossible arguments', () => {
    expect(() => studentTQuantile(1.2, 3)).toThrow(/probability/);
    expect(() => studentTQuantile(Number.NaN, 3)).toThrow(RangeError);
    expect(() => studentTQuantile(0.9, 0)).toThrow(/degrees of freedom/);
    expect(() => studentTCdf(1, -1)).toThrow(/degrees of freedom/);
    expect(() => studentTCdf(1, Infinity)).toThrow(RangeError);
    expect(() => studentTCdf(Number.NaN, 3)).toThrow(RangeError);
  });
});

describe('mean and standard deviation', () => {
  it('are the textbook values', () => {
    expect(mean([2, 4, 4, 4, 5, 5, 7, 9])).toBe(5);
    expectRelative(sampleSd([2, 4, 4, 4, 5, 5, 7, 9]), Math.sqrt(32 / 7), 1e-15);
    expect(sampleSd([3])).toBe(0);
    expect(sampleSd([])).toBe(0);
    expect(sampleSd([0.1, 0.1, 0.1])).toBe(0);
    expect(mean([0.1, 0.1, 0.1])).toBe(0.1);
    expect(() => mean([])).toThrow(/no values/);
    expect(() => mean([1, Number.NaN])).toThrow(/value 1 is not a finite number/);
    expect(() => sampleSd([1, Infinity])).toThrow(/not a finite number/);
  });
});

describe('t intervals', () => {
  // mean ± t((1 + level)/2, n − 1) · s / √n, every number computed independently (see the top).
  const textbook: { values: number[]; level: number; mean: number; sd: number; low: number; high: number }[] = [
    { values: [1, 2, 3], level: 0.95, mean: 2, sd: 1, low: -0.48413771175033105, high: 4.484137711750331 },
    { values: [0.48, 0.475, 0.51, 0.49], level: 0.95, mean: 0.48875, sd: 0.015478479684172259, low: 0.46412028475884853, high: 0.5133797152411514 },
    { values: [10.5, 9.8, 11.2, 10.1, 10.9], level: 0.9, mean: 10.5, sd: 0.570087712549569, low: 9.956483581826516, high: 11.043516418173484 },
    { values: [2, 4, 4, 4, 5, 5, 7, 9], level: 0.99, mean: 5, sd: 2.138089935299395, low: 2.3546392794246556, high: 7.645360720575344 },
  ];

  it('equal the textbook interval to 1e-12', () => {
    for (const c of textbook) {
      const iv = tInterval(c.values, c.level) as Interval;
      expect(iv.n).toBe(c.values.length);
      expect(iv.level).toBe(c.level);
      expectRelative(iv.mean, c.mean, 1e-12);
      expectRelative(iv.sd, c.sd, 1e-12);
      expectRelative(iv.low, c.low, 1e-12);
      expectRelative(iv.high, c.high, 1e-12);
      // The same formula written out with this module's quantile.
      const half = (studentTQuantile((1 + c.level) / 2, c.values.length - 1) * c.sd) / Math.sqrt(c.values.length);
      expectRelative(iv.high - iv.mean, half, 1e-12);
    }
  });

  it('default to 95% and need two values', () => {
    expect(tInterval([1, 2, 3])?.level).toBe(0.95);
    expect(tInterval([1])).toBeNull();
    expect(tInterval([])).toBeNull();
    const flat = tInterval([0.3, 0.3, 0.3]) as Interval;
    expect([flat.low, flat.mean, flat.high, flat.sd]).toEqual([0.3, 0.3, 0.3, 0]);
  });

  it('the paired difference is the t interval of the per-seed differences', () => {
    const a = [0.61, 0.58, 0.64];
    const b = [0.55, 0.57, 0.6];
    const iv = pairedDifference(a, b) as Interval;
    expectRelative(iv.mean, 0.03666666666666667, 1e-12);
    expectRelative(iv.sd, 0.025166114784235832, 1e-12);
    expectRelative(iv.low, -0.02584942812709111, 1e-12);
    expectRelative(iv.high, 0.09918276146042444, 1e-12);
    expect(excludes(iv, 0)).toBe(false); // +3.7 points with 3 seeds: not significant
    expect(pairedDifference([1], [2])).toBeNull();
  });

  it('excludes says whether the null value lies outside the interval', () => {
    const iv: Interval = { mean: 1, low: 0.5, high: 1.5, n: 3, sd: 0.2, level: 0.95 };
    expect(excludes(iv, 0)).toBe(true);
    expect(excludes(iv, 2)).toBe(true);
    expect(excludes(iv, 1)).toBe(false);
    expect(excludes(iv, 0.5)).toBe(false); // on the boundary: not outside
    expect(() => excludes(iv, Number.NaN)).toThrow(RangeError);
  });

  it('reject what they cannot summarize, naming the problem', () => {
    expect(() => tInterval([1, Number.NaN, 3])).toThrow(/value 1 is not a finite number/);
    expect(() => tInterval([1, 2], 1)).toThrow(/level/);
    expect(() => tInterval([1, 2], 0)).toThrow(/level/);
    expect(() => pairedDifference([1, 2, 3], [1, 2])).toThrow(/same length.*3 and 2/);
    expect(() => pairedDifference([1, 2], [1, Infinity])).toThrow(/second method.*value 1 is not a finite number/);
    expect(() => pairedLogRatio([1, 2], [1])).toThrow(/same length/);
    expect(() => pairedLogRatio([1, 0], [1, 2])).toThrow(/first method.*value 1 is not positive/);
    expect(() => pairedLogRatio([1, 2], [-1, 2])).toThrow(/second method.*value 0 is not positive/);
    expect(() => pairedLogRatio([1, Number.NaN], [1, 2])).toThrow(/not a finite number/);
    for (const fn of [() => pairedDifference([1], [1, 2]), () => pairedLogRatio([1, 2], [0, 1])]) expect(fn).toThrow(RangeError);
  });
});

describe('the comparison test on simulated seeds', () => {
  it('a null comparison with 3 seeds per method is significant 5% ± 1.5% of the time', () => {
    const gauss = normals(13);
    const trials = 2000;
    let significant = 0;
    for (let i = 0; i < trials; i++) {
      // Both methods from the same distribution; seed i of both shares a seed effect (matched seeds).
      const seedEffect = draw(gauss, 3, 0, 0.5);
      const a = seedEffect.map((s) => 0.6 + s + 0.02 * gauss());
      const b = seedEffect.map((s) => 0.6 + s + 0.02 * gauss());
      if (excludes(pairedDifference(a, b) as Interval, 0)) significant++;
    }
    const rate = significant / trials; // measured: 108 of 2,000 (5.4%)
    expect(rate).toBeGreaterThanOrEqual(0.035);
    expect(rate).toBeLessThanOrEqual(0.065);
  });

  it('a shift of 2 standard deviations with 10 seeds per method is significant in at least 95% of comparisons', () => {
    const gauss = normals(14);
    const trials = 2000;
    let significant = 0;
    for (let i = 0; i < trials; i++) {
      // Independent seeds (no shared seed effect to cancel): the hardest case for the paired test.
      const a = draw(gauss, 10, 2, 1);
      const b = draw(gauss, 10, 0, 1);
      const iv = pairedDifference(a, b) as Interval;
      if (excludes(iv, 0)) significant++;
    }
    // Theory: noncentral t, δ = 2/√2 · √10 = 4.47, 9 df: power 0.977. Measured: 1,944 of 2,000 (97.2%).
    expect(significant / trials).toBeGreaterThanOrEqual(0.95);
  });

  it('the log ratio of exact ratios is that ratio, with a zero-width interval', () => {
    const b = [12.5, 40, 33.25, 7];
    const a = b.map((v) => 2 * v);
    const iv = pairedLogRatio(a, b) as Interval;
    expect(iv.sd).toBe(0);
    expectRelative(iv.mean, 2, 1e-15);
    expect(iv.low).toBe(iv.mean);
    expect(iv.high).toBe(iv.mean);
    expect(excludes(iv, 1)).toBe(true);
    expect(pairedLogRatio([2], [1])).toBeNull();
  });

  it('the log ratio is the difference test on the logs, exponentiated (null rate 5% ± 1.5%)', () => {
    const gauss = normals(15);
    const trials = 2000;
    let significant = 0;
    for (let i = 0; i < trials; i++) {
      const a = draw(gauss, 3).map((z) => 120 * Math.exp(0.3 * z)); // e.g. steps to target
      const b = draw(gauss, 3).map((z) => 120 * Math.exp(0.3 * z));
      const ratio = pairedLogRatio(a, b) as Interval;
      const logs = pairedDifference(a.map(Math.log), b.map(Math.log)) as Interval;
      // log(a/b) and log a − log b differ by rounding only.
      expect(Math.abs(Math.log(ratio.mean) - logs.mean)).toBeLessThan(1e-14);
      expectRelative(ratio.low, Math.exp(logs.low), 1e-12);
      expectRelative(ratio.high, Math.exp(logs.high), 1e-12);
      expect(Math.abs(ratio.sd - logs.sd)).toBeLessThan(1e-14);
      expect(excludes(ratio, 1)).toBe(excludes(logs, 0));
      if (excludes(ratio, 1)) significant++;
    }
    const rate = significant / trials; // measured: 80 of 2,000 (4.0%)
    expect(rate).toBeGreaterThanOrEqual(0.035);
    expect(rate).toBeLessThanOrEqual(0.065);
  });
});
