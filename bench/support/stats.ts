/** Small summaries for benchmark samples; nearest-rank percentiles, so every figure is a sample. */

/** The value at percentile p (0–100) by nearest rank; NaN for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

export const median = (samples: readonly number[]): number => percentile(samples, 50);

/** Rounds to whole milliseconds (or to `digits` decimals) for the JSON report. */
export function round(n: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Median, p95, min, max and the samples themselves, rounded. */
export function summary(samples: readonly number[]): {
  median: number;
  p95: number;
  min: number;
  max: number;
  samples: number[];
} {
  return {
    median: round(median(samples)),
    p95: round(percentile(samples, 95)),
    min: round(Math.min(...samples)),
    max: round(Math.max(...samples)),
    samples: samples.map((s) => round(s)),
  };
}

/** Median and p95 only, for per-step breakdowns. */
export function brief(samples: readonly number[]): { median: number; p95: number } {
  return { median: round(median(samples)), p95: round(percentile(samples, 95)) };
}
