// The statistics of a fair comparison (docs/comparisons.md): a method is replicated over
// a few matched seeds, and what is reported is a mean with a confidence interval and the number of seeds.
//
// Every interval here is a two-sided Student-t interval of a mean over n values with n − 1 degrees of
// freedom: mean ± t((1 + level) / 2, n − 1) · s / √n, s the sample standard deviation (n − 1 denominator).
// With 3–5 seeds a normal (z) interval would be far too narrow (t(0.975, 2) = 4.30 against z = 1.96), which
// is why the t quantile is computed exactly for any degrees of freedom instead of tabulated.
//
//   - tInterval: the interval of one method's mean over its seeds.
//   - pairedDifference: the interval of mean(a[i] − b[i]), paired by seed index: seed i of both methods had
//     the same data order and the same random draws, so the seed-to-seed variation that both share cancels
//     and the interval is much tighter than two independent intervals would suggest. The caller must pass
//     a and b in the same seed order.
//   - pairedLogRatio: the same on log(a[i] / b[i]), exponentiated back: a geometric-mean ratio with its
//     interval (for speed-ups and steps-to-target, which are ratios and are skewed). Its sd is on the log
//     scale. "Not significant" for a ratio means the interval covers 1.
//   - excludes: whether the null value (0 for a difference, 1 for a ratio) lies outside the interval, the
//     meaning of "significant" at the interval's level.
//
// The interval assumes the per-seed values (or differences) are roughly normal; with 3 seeds only large
// differences come out significant, which is the honest answer, not a defect.
//
// The t distribution's CDF is computed from the regularized incomplete beta function (its continued
// fraction), P(T > t) = I_{df/(df+t²)}(df/2, 1/2) / 2, and its quantile by a safeguarded Newton iteration on
// the log of that tail (or of the central part, F(t) − 1/2, near the median). Measured against 50-digit
// mpmath values over a grid (a sample of them is in test/unit/core/stats.test.ts): relative error below 1e-14
// for df from 0.05 to 1e7 wherever the probability is above 1e-20 (further out the tail's own condition
// number, about df, sets the limit), quantiles within 2e-13. Pure TypeScript, no imports: the engine, the CLI and the webviews can all use it.

/** A two-sided confidence interval of a mean (Student t over n values; n-1 degrees of freedom). */
export interface Interval {
  /** The mean (for pairedLogRatio: the geometric-mean ratio, exp of the mean log ratio). */
  mean: number;
  low: number;
  high: number;
  /** The number of values (seeds). */
  n: number;
  /** The sample standard deviation of the values (n − 1 denominator; for pairedLogRatio: of the log ratios). */
  sd: number;
  /** The confidence level, e.g. 0.95. */
  level: number;
}

// ---------------------------------------------------------------------------------------------------------
// Checks

function checkFinite(values: readonly number[], what: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new RangeError(`${what}: value ${i} is not a finite number (${String(v)})`);
    }
  }
}

function checkLevel(level: number): void {
  if (!(typeof level === 'number' && level > 0 && level < 1)) {
    throw new RangeError(`confidence level must be a number strictly between 0 and 1 (got ${String(level)})`);
  }
}

function checkDf(df: number): void {
  if (!(typeof df === 'number' && df > 0 && Number.isFinite(df))) {
    throw new RangeError(`degrees of freedom must be a positive finite number (got ${String(df)})`);
  }
}

function checkSameLength(a: readonly number[], b: readonly number[]): void {
  if (a.length !== b.length) {
    throw new RangeError(`paired values must have the same length, one per seed (lengths ${a.length} and ${b.length} differ)`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Mean and standard deviation

/** The arithmetic mean. Throws a RangeError on an empty list or a non-finite value. */
export function mean(values: readonly number[]): number {
  checkFinite(values, 'mean');
  if (values.length === 0) throw new RangeError('mean of no values');
  // Shifted by the first value, so that identical values give exactly that value (and a zero sd).
  const x0 = values[0] as number;
  let sum = 0;
  for (const v of values) sum += v - x0;
  return x0 + sum / values.length;
}

/** The sample standard deviation (n − 1 denominator, two-pass); 0 for fewer than 2 values. */
export function sampleSd(values: readonly number[]): number {
  checkFinite(values, 'sampleSd');
  const n = values.length;
  if (n < 2) return 0;
  const m = mean(values);
  let ss = 0;
  let s = 0;
  for (const v of values) {
    const d = v - m;
    ss += d * d;
    s += d;
  }
  // Corrected two-pass formula (the second term removes the rounding error of the mean).
  return Math.sqrt(Math.max(0, ss - (s * s) / n) / (n - 1));
}

// ---------------------------------------------------------------------------------------------------------
// Special functions

const LN_SQRT_2PI = 0.9189385332046728; // ln √(2π)
const LN_SQRT_PI = 0.5723649429247001; // ln Γ(1/2) = ln √π

/**
 * lnΓ(x) − [(x − 1/2) ln x − x + ln √(2π)] for x ≥ 10: the Stirling series Σ B₂ₖ / (2k(2k−1) x^(2k−1)),
 * k = 1…8; the first omitted term is below 2e-18 at x = 10.
 */
function lgammaCorrection(x: number): number {
  const r = 1 / x;
  const r2 = r * r;
  return (
    r *
    (1 / 12 +
      r2 *
        (-1 / 360 +
          r2 * (1 / 1260 + r2 * (-1 / 1680 + r2 * (1 / 1188 + r2 * (-691 / 360360 + r2 * (1 / 156 + r2 * (-3617 / 122400))))))))
  );
}

/** ln Γ(x) for x > 0. */
function lnGamma(x: number): number {
  if (x === 0.5) return LN_SQRT_PI;
  if (x === 1 || x === 2) return 0;
  if (x >= 10) return (x - 0.5) * Math.log(x) - x + LN_SQRT_2PI + lgammaCorrection(x);
  // Γ(x) = Γ(x + n) / (x (x + 1) … (x + n − 1)) with x + n ≥ 10.
  let product = 1;
  let z = x;
  while (z < 10) {
    product *= z;
    z += 1;
  }
  return lnGamma(z) - Math.log(product);
}

/**
 * ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b), without the cancellation of large log-gammas: Stirling's
 * form with the corrections for the large arguments (as R's lbeta does), the larger argument q raised to
 * 10 first when both are below 10 (B(p, q) = B(p, q + 1) (p + q) / q).
 */
function lnBeta(a: number, b: number): number {
  const p = Math.min(a, b);
  let q = Math.max(a, b);
  if (p >= 10) {
    const corr = lgammaCorrection(p) + lgammaCorrection(q) - lgammaCorrection(p + q);
    return -0.5 * Math.log(q) + LN_SQRT_2PI + corr + (p - 0.5) * Math.log(p / (p + q)) + q * Math.log1p(-p / (p + q));
  }
  let shift = 0;
  if (q < 10) {
    let ratio = 1;
    while (q < 10) {
      ratio *= (p + q) / q;
      q += 1;
    }
    shift = Math.log(ratio);
  }
  const corr = lgammaCorrection(q) - lgammaCorrection(p + q);
  return lnGamma(p) + corr + p - p * Math.log(p + q) + (q - 0.5) * Math.log1p(-p / (p + q)) + shift;
}

const MAX_ITERATIONS = 100_000;

/**
 * The continued fraction of the incomplete beta function, I_x(a, b) = front · r with
 * front = x^a y^b / B(a, b), y = 1 − x; it converges quickly for x < (a + 1) / (a + b + 2). Evaluated as
 * DiDonato & Morris's BFRAC (ACM TOMS 708, 1992) does, by the forward recurrence of its convergents with
 * λ = (a + b) y − b computed from y: the plain form, 1 − (a + b) x / (a + 1), cancels catastrophically when
 * x is near 1 and a is large (a t distribution with many degrees of freedom), and lost 1e-10 there.
 */
function betaContinuedFraction(a: number, b: number, x: number, y: number): number {
  const lambda = a > b ? (a + b) * y - b : a - (a + b) * x;
  const c = lambda + 1;
  const c0 = b / a;
  const c1 = 1 / a + 1;
  const yp1 = y + 1;
  let p = 1;
  let s = a + 1;
  let an = 0;
  let bn = 1;
  let anp1 = 1;
  let bnp1 = c / c1;
  let r = c1 / c;
  for (let n = 1; n <= MAX_ITERATIONS; n++) {
    let t = n / a;
    const w = n * (b - n) * x;
    let e = a / s;
    const alpha = p * (p + c0) * e * e * (w * x);
    e = (t + 1) / (c1 + t + t);
    const beta = n + w / s + e * (c + n * yp1);
    p = t + 1;
    s += 2;
    t = alpha * an + beta * anp1;
    an = anp1;
    anp1 = t;
    t = alpha * bn + beta * bnp1;
    bn = bnp1;
    bnp1 = t;
    const r0 = r;
    r = anp1 / bnp1;
    if (Math.abs(r - r0) <= Number.EPSILON * r) return r;
    // Rescale, so that the convergents neither overflow nor underflow.
    an /= bnp1;
    bn /= bnp1;
    anp1 = r;
    bnp1 = 1;
  }
  throw new Error(`incomplete beta continued fraction did not converge (x = ${x}, a = ${a}, b = ${b})`);
}

/**
 * [I_x(a, b), 1 − I_x(a, b)], each to full relative precision: y = 1 − x and the logs of x and y are passed
 * by the caller, who can compute them without cancellation.
 */
function incompleteBetaPair(x: number, y: number, lnX: number, lnY: number, a: number, b: number): [number, number] {
  // x or y may have underflowed to 0 while its log is still finite: the logs decide.
  if (lnX === -Infinity) return [0, 1];
  if (lnY === -Infinity) return [1, 0];
  const front = Math.exp(a * lnX + b * lnY - lnBeta(a, b));
  if (x < (a + 1) / (a + b + 2)) {
    const v = front * betaContinuedFraction(a, b, x, y);
    return [v, 1 - v];
  }
  const w = front * betaContinuedFraction(b, a, y, x);
  return [1 - w, w];
}

/**
 * For t ≥ 0: [P(T > t), P(0 < T ≤ t)] = [I_x(df/2, 1/2) / 2, (1 − I_x(df/2, 1/2)) / 2], x = df / (df + t²),
 * each to full relative precision (the upper tail for large t, the central part for small t).
 */
function tHalves(t: number, df: number): [number, number] {
  if (t === 0) return [0.5, 0];
  if (t === Infinity) return [0, 0.5];
  const sqrtDf = Math.sqrt(df);
  let x: number, y: number, lnX: number, lnY: number;
  if (t <= sqrtDf) {
    const w = t / sqrtDf;
    const w2 = w * w;
    const l = Math.log1p(w2);
    x = 1 / (1 + w2);
    y = w2 / (1 + w2);
    lnX = -l;
    lnY = 2 * Math.log(w) - l;
  } else {
    const s = sqrtDf / t;
    const s2 = s * s;
    const l = Math.log1p(s2);
    x = s2 / (1 + s2);
    y = 1 / (1 + s2);
    lnX = 2 * Math.log(s) - l;
    lnY = -l;
  }
  const [i, j] = incompleteBetaPair(x, y, lnX, lnY, df / 2, 0.5);
  return [i / 2, j / 2];
}

/** ln of the t density at t ≥ 0. */
function lnTDensity(t: number, df: number): number {
  const w = t / Math.sqrt(df);
  const l = w > 1e150 ? 2 * Math.log(w) : Math.log1p(w * w);
  return -((df + 1) / 2) * l - lnBeta(df / 2, 0.5) - 0.5 * Math.log(df);
}

/** The cumulative distribution function of Student's t with df degrees of freedom (any positive real). */
export function studentTCdf(t: number, df: number): number {
  checkDf(df);
  if (typeof t !== 'number' || Number.isNaN(t)) throw new RangeError(`t must be a number (got ${String(t)})`);
  const [tail, central] = tHalves(Math.abs(t), df);
  return t < 0 ? tail : 0.5 + central;
}

/** A starting value for the normal quantile of an upper tail q ≤ 1/2 (Abramowitz & Stegun 26.2.23, |error| < 4.5e-4). */
function normalUpperGuess(q: number): number {
  const s = Math.sqrt(-2 * Math.log(q));
  return s - (2.515517 + s * (0.802853 + s * 0.010328)) / (1 + s * (1.432788 + s * (0.189269 + s * 0.001308)));
}

/**
 * The t > 0 with P(T > t) = q, equivalently P(0 < T ≤ t) = c; q + c = 1/2, both given exactly by the caller.
 * Newton's method on the log of whichever of the two is smaller, in ln t (both are nearly linear in ln t:
 * the tail like −df·ln t far out, the central part like ln t near 0), kept inside a bracket that every
 * evaluation narrows; a step that leaves the bracket bisects it (geometrically) instead.
 */
function upperQuantile(q: number, c: number, df: number): number {
  if (q <= 0) return Infinity;
  if (c <= 0) return 0;
  const useTail = q <= 0.25;
  const lnTarget = Math.log(useTail ? q : c);
  const lnB = lnBeta(df / 2, 0.5);
  let t: number;
  if (useTail) {
    // The power-law tail bounds t from above; the Cornish–Fisher expansion is right for large df.
    const powerTail = Math.exp(0.5 * Math.log(df) - (Math.log(df) + lnB + Math.log(q)) / df);
    const z = normalUpperGuess(q);
    const z2 = z * z;
    const cornishFisher = z + (z * (z2 + 1)) / (4 * df) + (z * (5 * z2 * z2 + 16 * z2 + 3)) / (96 * df * df);
    t = Math.min(powerTail, cornishFisher);
  } else {
    // F(t) − 1/2 ≤ density(0) · t, so this bounds t from below.
    t = c * Math.sqrt(df) * Math.exp(lnB);
  }
  if (!(t > 0 && Number.isFinite(t))) t = 1;
  let lo = 0;
  let hi = Infinity;
  for (let iteration = 0; iteration < 400; iteration++) {
    const [tail, central] = tHalves(t, df);
    const part = useTail ? tail : central;
    // r increases with t and is 0 at the answer.
    const r = part > 0 ? (useTail ? lnTarget - Math.log(part) : Math.log(part) - lnTarget) : useTail ? Infinity : -Infinity;
    if (r === 0) return t;
    if (r < 0) lo = t;
    else hi = t;
    // d r / d ln t = t · density(t) / part.
    const slope = part > 0 ? Math.exp(Math.log(t) + lnTDensity(t, df) - Math.log(part)) : NaN;
    const step = -r / slope;
    // Converged: the next step is below the noise of r (it may then stray just outside the bracket).
    if (Math.abs(step) < 1e-10) return t * Math.exp(step);
    let next = t * Math.exp(step);
    if (!(Number.isFinite(next) && next > lo && next < hi)) {
      if (hi === Infinity && lo * 16 === Infinity) return Infinity; // beyond the largest double
      if (hi === Infinity) next = lo * 16;
      else if (lo === 0) next = hi / 16;
      else next = Math.sqrt(lo) * Math.sqrt(hi);
    }
    if (next === t) return next;
    if (hi !== Infinity && lo > 0 && hi - lo <= 4 * Number.EPSILON * lo) return next;
    t = next;
  }
  return t;
}

/**
 * The quantile of Student's t with df degrees of freedom (any positive real): the t with
 * studentTCdf(t, df) = p; −Infinity at p = 0 and Infinity at p = 1.
 */
export function studentTQuantile(p: number, df: number): number {
  checkDf(df);
  if (!(typeof p === 'number' && p >= 0 && p <= 1)) throw new RangeError(`probability must be between 0 and 1 (got ${String(p)})`);
  if (p === 0.5) return 0;
  // 1 − p and p − 1/2 are exact for p ≥ 1/2, as are p and 1/2 − p for 1/4 ≤ p < 1/2.
  return p > 0.5 ? upperQuantile(1 - p, p - 0.5, df) : -upperQuantile(p, 0.5 - p, df);
}

// ---------------------------------------------------------------------------------------------------------
// Intervals

/** The interval from values already checked: mean ± t((1 + level)/2, n − 1) · s / √n. */
function intervalOf(values: readonly number[], level: number): Interval | null {
  const n = values.length;
  if (n < 2) return null;
  const m = mean(values);
  const sd = sampleSd(values);
  // (1 − level)/2 and level/2 are the exact tail and central parts of (1 + level)/2.
  const half = sd === 0 ? 0 : (upperQuantile((1 - level) / 2, level / 2, n - 1) * sd) / Math.sqrt(n);
  return { mean: m, low: m - half, high: m + half, n, sd, level };
}

/**
 * The two-sided Student-t interval of the mean of values (n − 1 degrees of freedom) at level (default
 * 0.95); null for fewer than 2 values. Throws a RangeError on a non-finite value or a level outside (0, 1).
 */
export function tInterval(values: readonly number[], level = 0.95): Interval | null {
  checkLevel(level);
  checkFinite(values, 'tInterval');
  return intervalOf(values, level);
}

/**
 * The interval of the mean paired difference mean(a[i] − b[i]), pairs matched by seed index; null for
 * fewer than 2 pairs. Throws a RangeError when the lengths differ or a value is not finite.
 */
export function pairedDifference(a: readonly number[], b: readonly number[], level = 0.95): Interval | null {
  checkLevel(level);
  checkSameLength(a, b);
  checkFinite(a, 'pairedDifference (first method)');
  checkFinite(b, 'pairedDifference (second method)');
  const d = a.map((v, i) => v - (b[i] as number));
  checkFinite(d, 'pairedDifference (difference)');
  return intervalOf(d, level);
}

/**
 * The interval of the geometric-mean ratio of a[i] / b[i], pairs matched by seed index: the t-interval of
 * log(a[i] / b[i]), exponentiated (mean, low and high are ratios; sd is of the log ratios). Null for fewer
 * than 2 pairs. Throws a RangeError when the lengths differ or a value is not finite and positive.
 */
export function pairedLogRatio(a: readonly number[], b: readonly number[], level = 0.95): Interval | null {
  checkLevel(level);
  checkSameLength(a, b);
  checkFinite(a, 'pairedLogRatio (first method)');
  checkFinite(b, 'pairedLogRatio (second method)');
  const positive = (values: readonly number[], what: string): void => {
    values.forEach((v, i) => {
      if (!(v > 0)) throw new RangeError(`pairedLogRatio (${what}): value ${i} is not positive (${v}); a log ratio needs values > 0`);
    });
  };
  positive(a, 'first method');
  positive(b, 'second method');
  const logs = a.map((v, i) => {
    const w = b[i] as number;
    const ratio = v / w; // exact ratios (a = 2·b) give identical logs, hence sd 0
    return ratio > 0 && Number.isFinite(ratio) ? Math.log(ratio) : Math.log(v) - Math.log(w);
  });
  const iv = intervalOf(logs, level);
  if (!iv) return null;
  return { mean: Math.exp(iv.mean), low: Math.exp(iv.low), high: Math.exp(iv.high), n: iv.n, sd: iv.sd, level };
}

/** Whether nullValue lies outside [low, high]: the difference (or ratio) is significant at the interval's level. */
export function excludes(iv: Interval, nullValue: number): boolean {
  if (typeof nullValue !== 'number' || Number.isNaN(nullValue)) throw new RangeError(`null value must be a number (got ${String(nullValue)})`);
  return nullValue < iv.low || nullValue > iv.high;
}
