/**
 * Where a frame is anomalous: the connected areas of the model's own map at or over the
 * threshold, as boxes in fractions of the frame. An operator (or a reject gate downstream)
 * needs the place of a defect, not only that there is one, and the snapshot JPEG is sent
 * only when an event starts.
 *
 * Found on the low-resolution map (one cell per stride-16 patch of the model's input, 14 × 14
 * for the shipped bundle), not on the upsampled one: a cell is the finest place the model can
 * tell apart, the search costs a few hundred comparisons whichever backend scored the frame,
 * and no full-size map has to be drawn for it. The image score is an average or a maximum of
 * an interpolation of these cells, so it never exceeds the largest cell: every anomalous
 * frame has at least one region.
 */
import type { FloatMap } from './map.js';

/** A box in fractions of the frame (as the model saw it: after the camera's roi and rotation). */
export interface AnomalyRegion {
  x: number;
  y: number;
  w: number;
  h: number;
  /** The largest map value inside, in the model's raw score units. */
  peak: number;
  /** Map cells at or over the threshold in it. */
  cells: number;
}

/** At most this many regions in a score message (scoring.maxRegions is bounded by it). */
export const MAX_REGIONS = 16;
/** scoring.maxRegions, and what `moead-edge score --json` reports. */
export const DEFAULT_MAX_REGIONS = 4;

/** Box coordinates are rounded to this many decimals: finer than any model's grid. */
const DECIMALS = 4;

/**
 * The areas of `map` (8-connected cells at or over `threshold`, NaN never counts), the
 * strongest first, at most `max` of them.
 */
export function anomalyRegions(map: FloatMap, threshold: number, max: number): AnomalyRegion[] {
  const { data, width, height } = map;
  if (data.length !== width * height) throw new RangeError(`map holds ${data.length} values, ${width} × ${height} needs ${width * height}`);
  if (max <= 0) return [];
  const seen = new Uint8Array(data.length);
  const stack: number[] = [];
  const regions: AnomalyRegion[] = [];
  for (let start = 0; start < data.length; start++) {
    if (seen[start] || !(data[start]! >= threshold)) continue;
    let [x0, y0, x1, y1] = [width, height, -1, -1];
    let peak = -Infinity;
    let cells = 0;
    seen[start] = 1;
    stack.push(start);
    while (stack.length > 0) {
      const at = stack.pop()!;
      const x = at % width;
      const y = (at - x) / width;
      cells += 1;
      peak = Math.max(peak, data[at]!);
      [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
      for (let ny = Math.max(0, y - 1); ny <= Math.min(height - 1, y + 1); ny++) {
        for (let nx = Math.max(0, x - 1); nx <= Math.min(width - 1, x + 1); nx++) {
          const next = ny * width + nx;
          if (seen[next] || !(data[next]! >= threshold)) continue;
          seen[next] = 1;
          stack.push(next);
        }
      }
    }
    regions.push({ x: round(x0 / width), y: round(y0 / height), w: round((x1 + 1 - x0) / width), h: round((y1 + 1 - y0) / height), peak, cells });
  }
  // Strongest first; among equals the larger, then the one read first (top to bottom).
  return regions.sort((a, b) => b.peak - a.peak || b.cells - a.cells).slice(0, max);
}

function round(fraction: number): number {
  return Number(fraction.toFixed(DECIMALS));
}
