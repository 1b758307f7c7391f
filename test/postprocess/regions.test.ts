/**
 * Where a frame is anomalous: connected areas of the model's map at or over the threshold,
 * as boxes in fractions of the frame, the strongest first.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { anomalyRegions, type FloatMap } from '../../src/postprocess/index.js';
import { decide, describeRegion, regionsOf } from '../../src/scoring/decide.js';

/** A map from rows of digits: each digit d is the value d / 10 (`.` is 0). */
function map(...rows: string[]): FloatMap {
  const width = rows[0]!.length;
  const data = Float32Array.from(rows.join('').split(''), (c) => (c === '.' ? 0 : Number(c) / 10));
  return { data, width, height: rows.length };
}

test('one area: its bounding box in fractions of the frame, its peak and its cells', () => {
  const regions = anomalyRegions(map('....', '.56.', '..7.', '....'), 0.5, 4);
  assert.deepEqual(regions, [{ x: 0.25, y: 0.25, w: 0.5, h: 0.5, peak: Math.fround(0.7), cells: 3 }]);
});

test('cells touching at a corner are one area; cells apart are two, the strongest first', () => {
  const regions = anomalyRegions(map('5.....', '.5...9', '......', '6.....'), 0.5, 4);
  assert.deepEqual(
    regions.map((r) => [r.x, r.y, r.w, r.h, r.cells]),
    [
      [0.8333, 0.25, 0.1667, 0.25, 1],
      [0, 0.75, 0.1667, 0.25, 1],
      [0, 0, 0.3333, 0.5, 2],
    ],
  );
});

test('at most `max` areas, the strongest; equal peaks put the larger first', () => {
  const m = map('7.7.7', '7....', '.....', '9...8');
  assert.deepEqual(
    anomalyRegions(m, 0.5, 2).map((r) => [r.peak, r.cells]),
    [
      [Math.fround(0.9), 1],
      [Math.fround(0.8), 1],
    ],
  );
  assert.deepEqual(
    anomalyRegions(m, 0.5, 16).map((r) => r.cells),
    [1, 1, 2, 1, 1],
  );
  assert.deepEqual(anomalyRegions(m, 0.5, 0), []);
});

test('the threshold itself counts (as for the image score); NaN never does', () => {
  const m: FloatMap = { data: Float32Array.from([0.5, Number.NaN, 0.4, Number.NaN]), width: 2, height: 2 };
  assert.deepEqual(anomalyRegions(m, 0.5, 4), [{ x: 0, y: 0, w: 0.5, h: 0.5, peak: 0.5, cells: 1 }]);
  assert.deepEqual(anomalyRegions({ data: new Float32Array(4).fill(Number.NaN), width: 2, height: 2 }, 0.5, 4), []);
});

test('a whole-frame area is the whole frame', () => {
  assert.deepEqual(anomalyRegions(map('99', '99'), 0.1, 4), [{ x: 0, y: 0, w: 1, h: 1, peak: Math.fround(0.9), cells: 4 }]);
});

test('BAD CALL - a map whose values do not fill width × height is a RangeError naming both', () => {
  assert.throws(() => anomalyRegions({ data: new Float32Array(3), width: 2, height: 2 }, 0.5, 4), { name: 'RangeError', message: 'map holds 3 values, 2 × 2 needs 4' });
});

test('score messages name regions for anomalous frames only, against the threshold that decided them', () => {
  const lowRes = map('....', '.6..', '....', '..8.');
  const threshold = { value: 0.7, good_median: 0.2 };
  assert.deepEqual(regionsOf({ lowRes }, decide(0.75, threshold), 4), { regions: [{ x: 0.5, y: 0.75, w: 0.25, h: 0.25, peak: Math.fround(0.8), cells: 1 }] });
  assert.deepEqual(regionsOf({ lowRes }, decide(0.65, threshold), 4), {}, 'not anomalous: no regions, even with a cell over the threshold');
  assert.deepEqual(regionsOf({ lowRes }, decide(0.75, threshold), 0), {}, 'scoring.maxRegions 0');
  // A lower camera threshold finds the weaker cell too.
  assert.equal(regionsOf({ lowRes }, decide(0.75, { value: 0.55, good_median: 0.2 }), 4).regions?.length, 2);
});

test('a region for the log: its spans in fractions of the frame, two decimals', () => {
  assert.equal(describeRegion({ x: 0.2857, y: 0.4286, w: 0.2143, h: 0.2857, peak: 0.67, cells: 8 }), 'x 0.29–0.50, y 0.43–0.71 of the frame');
  assert.equal(describeRegion({ x: 0.9286, y: 0, w: 0.0714, h: 1, peak: 0.9, cells: 14 }), 'x 0.93–1.00, y 0.00–1.00 of the frame');
});

test('an anomalous frame always says where: a score a rounding above the largest cell still finds that cell', () => {
  const lowRes = map('....', '.6..', '....', '....');
  const largest = lowRes.data[5]!;
  const decision = decide(largest + 1e-7, { value: largest + 5e-8, good_median: 0.1 });
  assert.equal(decision.anomalous, true);
  assert.deepEqual(regionsOf({ lowRes }, decision, 4), { regions: [{ x: 0.25, y: 0.25, w: 0.25, h: 0.25, peak: largest, cells: 1 }] });
});
