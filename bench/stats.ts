/** Percentiles and number formatting for the results table. */

/** The p-th percentile (0–100) of `values` by the nearest-rank method; NaN when empty. */
export function percentile(values: ArrayLike<number>, p: number): number {
  const sorted = Float64Array.from(values).sort();
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

/** Several percentiles with one sort. */
export function percentiles(values: ArrayLike<number>, ps: readonly number[]): number[] {
  const sorted = Float64Array.from(values).sort();
  return ps.map((p) => {
    if (sorted.length === 0) return Number.NaN;
    const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
    return sorted[rank - 1] ?? Number.NaN;
  });
}

const grouped = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** 12345.6 → "12,346". */
export function int(n: number): string {
  return Number.isFinite(n) ? grouped.format(n) : "–";
}

/** Milliseconds with sensible precision: 0.42 ms, 3.1 ms, 250 ms. */
export function ms(n: number): string {
  if (!Number.isFinite(n)) return "–";
  if (n < 1) return `${n.toFixed(2)} ms`;
  if (n < 10) return `${n.toFixed(1)} ms`;
  return `${int(n)} ms`;
}

export function mb(bytes: number | undefined): string {
  return bytes === undefined || !Number.isFinite(bytes) ? "–" : `${(bytes / 1024 / 1024).toFixed(0)} MB`;
}

export function pct(ratio: number): string {
  return Number.isFinite(ratio) ? `${(ratio * 100).toFixed(0)} %` : "–";
}
