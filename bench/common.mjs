// Helpers shared by the benchmark sections (bench/core.mjs, bench/sync.mjs) and the CLI.

/** Median, min and max of per-batch samples. */
export function summary(samples, unit) {
  const sorted = [...samples].sort((x, y) => x - y);
  const n = sorted.length;
  const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return { value: median, unit, min: sorted[0], max: sorted[n - 1], batches: n, samples };
}

/** One turn of the event loop. */
export const tick = () => new Promise((resolve) => setImmediate(resolve));

export function fmt(x, digits = 1) {
  if (x === undefined || x === null || Number.isNaN(x)) return 'n/a';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export const pad = (s, n) => String(s).padEnd(n);
export const lpad = (s, n) => String(s).padStart(n);

/** A table row: label, median, min, max, unit. */
export const row = (label, s, digits = 1) =>
  `${pad(label, 44)}${lpad(fmt(s.value, digits), 12)}${lpad(s.min !== undefined ? fmt(s.min, digits) : '-', 12)}${lpad(
    s.max !== undefined ? fmt(s.max, digits) : '-',
    12,
  )}  ${s.unit}`;

export const tableHeader = () => [`${pad('measurement', 44)}${lpad('median', 12)}${lpad('min', 12)}${lpad('max', 12)}  unit`, '-'.repeat(88)];
