/** Backpressure: the newest frame wins and every replaced frame is counted; telemetry figures. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LatestFrameSlot } from '../../src/daemon/slot.js';
import { LatencyWindow, percentile, RateMeter } from '../../src/daemon/stats.js';
import { watchLines } from '../../src/daemon/watch-lines.js';

test('a slow consumer gets the newest frame; the ones it replaced are counted', async () => {
  const slot = new LatestFrameSlot<number>();
  assert.equal(slot.put(1), true);
  assert.equal(slot.put(2), false);
  assert.equal(slot.put(3), false);
  assert.equal(slot.dropped, 2);
  assert.equal(await slot.take(), 3);
  // A waiting consumer gets the next frame directly, nothing dropped.
  const next = slot.take();
  assert.equal(slot.put(4), true);
  assert.equal(await next, 4);
  assert.equal(slot.dropped, 2);
  await assert.rejects(Promise.all([slot.take(), slot.take()]), /one consumer/);
  slot.put(5);
  slot.close();
  assert.equal(await slot.take(), undefined, 'closed: a waiting frame is not handed out');
  slot.put(6);
  assert.equal(await slot.take(), undefined);
});

test('every frame the slot discards goes to onDiscard: replaced, waiting at close, offered after close', async () => {
  const discarded: number[] = [];
  const slot = new LatestFrameSlot<number>((n) => discarded.push(n));
  slot.put(1);
  slot.put(2);
  assert.equal(await slot.take(), 2);
  slot.put(3);
  slot.close();
  slot.put(4);
  assert.deepEqual(discarded, [1, 3, 4], 'the frame taken is not discarded; the others are');
});

test('the slot holds one frame however fast frames come', async () => {
  const slot = new LatestFrameSlot<number>();
  for (let i = 0; i < 10_000; i++) slot.put(i);
  assert.equal(await slot.take(), 9999);
  assert.equal(slot.dropped, 9999);
});

test('latency percentiles by nearest rank over a bounded window; rate between readings', () => {
  assert.equal(percentile([], 50), null);
  assert.equal(percentile([1, 2, 3, 4], 50), 2);
  assert.equal(percentile([1, 2, 3, 4], 99), 4);
  const w = new LatencyWindow(100);
  for (let i = 1; i <= 300; i++) w.add(i);
  assert.deepEqual(w.percentiles(), { p50: 250, p95: 295, p99: 299 }, 'only the last 100 samples count');
  const rate = new RateMeter(0);
  assert.equal(rate.read(10, 2000), 5);
  assert.equal(rate.read(10, 3000), 0);
  // Two readings at the same instant: no time has passed, so no rate (not NaN or Infinity).
  assert.equal(rate.read(12, 3000), 0);
});

test('latency samples sort as numbers, the window keeps exactly its size, figures are rounded to 0.1 ms', () => {
  // As text, "10" sorts before "9": the median of 9 and 10 would come out as 10.
  const w = new LatencyWindow();
  w.add(10);
  w.add(9);
  assert.equal(w.percentiles().p50, 9);
  // Falling samples: the window's largest is the oldest it still holds, so it shows whether one
  // sample too many is kept (5 instead of 4).
  const four = new LatencyWindow(4);
  for (let v = 20; v >= 1; v--) four.add(v);
  assert.deepEqual(four.percentiles(), { p50: 2, p95: 4, p99: 4 });
  const r = new LatencyWindow();
  r.add(1.234);
  assert.equal(r.percentiles().p50, 1.2);
});

test('watch lines: host, port and topic to paste', () => {
  assert.deepEqual(watchLines({ url: 'mqtt://127.0.0.1:41234', embedded: true, root: 'moead/dev' }, 'moead'), [
    'moead-edge: publishing to mqtt://127.0.0.1:41234 under moead/dev/ (embedded broker: no mqtt.url configured)',
    'watch it with either of:',
    "  mosquitto_sub -h 127.0.0.1 -p 41234 -t 'moead/#' -v",
    "  npx mqtt sub -h 127.0.0.1 -p 41234 -t 'moead/#' -v",
  ]);
  const tls = watchLines({ url: 'mqtts://user@broker.example:8883', embedded: false, root: 'plant/cell' }, 'plant');
  assert.equal(tls[2], "  mosquitto_sub -h broker.example -p 8883 -u user -P '<password>' --capath /etc/ssl/certs -t 'plant/#' -v");
});
