/** What each benchmark hands back, and the text table made of it. */

export interface Row {
  /** Benchmark (section) the figure belongs to. */
  bench: string;
  figure: string;
  /** The measured value, already formatted with its unit. */
  value: string;
  /** What the value is compared with, measured in the same run, formatted. */
  baseline?: string;
  /** value / baseline in the direction the goal reads (higher is better unless the goal says). */
  ratio?: string;
  goal?: string;
  /** Whether the goal is met; absent when there is no goal or nothing to compare. */
  met?: boolean;
}

export interface BenchResult {
  name: string;
  rows: Row[];
  /** Method, caveats, and why a figure is missing. */
  notes: string[];
  /** Raw figures for --json. */
  data: Record<string, unknown>;
}

/** A section that could not run (missing file, no GPU): one row saying so, never a number. */
export function unavailable(name: string, figure: string, why: string): BenchResult {
  return { name, rows: [{ bench: name, figure, value: 'not measured' }], notes: [why], data: { unavailable: why } };
}

function pad(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - text.length));
}

export function formatTable(results: readonly BenchResult[]): string {
  const header = ['benchmark', 'figure', 'value', 'baseline (same run)', 'ratio', 'goal', 'met'];
  const lines = results.flatMap((r) =>
    r.rows.map((row) => [
      row.bench,
      row.figure,
      row.value,
      row.baseline ?? '',
      row.ratio ?? '',
      row.goal ?? '',
      row.met === undefined ? '' : row.met ? 'yes' : 'NO',
    ]),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => pad(c, widths[i]!)).join(' | ').trimEnd();
  const out = [fmt(header), widths.map((w) => '-'.repeat(w)).join('-|-')];
  for (const l of lines) out.push(fmt(l));
  const notes = results.flatMap((r) => r.notes.map((n) => `  [${r.name}] ${n}`));
  if (notes.length) out.push('', 'notes:', ...notes);
  return out.join('\n');
}
