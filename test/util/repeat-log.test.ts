/**
 * The repeat limiter on a clock the test moves: the first line of a kind is logged, repeats
 * within the window are counted, the next one after it carries the count, kinds are held
 * apart, and flush() says what is still held.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RepeatLimiter, repeatKind } from '../../src/util/repeat-log.js';

/**
 * A limiter writing `level message` lines into `lines`, on a clock set by `at(ms)`. Its
 * timers only run when the test calls `fire()`, which runs those due by then: a test that
 * never fires them sees what happens when the next line comes before its timer.
 */
function limiter(windowMs = 10_000): { repeats: RepeatLimiter; lines: string[]; at: (ms: number) => void; fire: () => void; timers: () => number } {
  const lines: string[] = [];
  let now = 0;
  let pending: { due: number; fn: () => void }[] = [];
  const schedule = (fn: () => void, delayMs: number): (() => void) => {
    const timer = { due: now + delayMs, fn };
    pending.push(timer);
    return () => (pending = pending.filter((t) => t !== timer));
  };
  const repeats = new RepeatLimiter(
    { warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`) },
    { windowMs, now: () => now, schedule },
  );
  const fire = (): void => {
    for (;;) {
      const due = pending.filter((t) => t.due <= now).sort((a, b) => a.due - b.due)[0];
      if (!due) return;
      pending = pending.filter((t) => t !== due);
      due.fn();
    }
  };
  return { repeats, lines, at: (ms) => (now = ms), fire, timers: () => pending.length };
}

test('the first line of a kind is logged at once; repeats within the window are held; the next after it says how many', () => {
  const { repeats, lines, at } = limiter();
  at(1000);
  repeats.warn('frame 1 skipped (decode): cam: not a PNG');
  assert.deepEqual(lines, ['warn frame 1 skipped (decode): cam: not a PNG']);
  for (let i = 2; i <= 213; i++) {
    at(1000 + i * 40);
    repeats.warn(`frame ${i} skipped (decode): cam: not a PNG`);
  }
  at(10_999);
  repeats.warn('frame 214 skipped (decode): cam: not a PNG');
  assert.equal(lines.length, 1, 'held back until the window is over');
  at(11_000);
  repeats.warn('frame 215 skipped (decode): cam: not a PNG');
  assert.deepEqual(lines.slice(1), ['warn frame 215 skipped (decode): cam: not a PNG (and 213 more like it in the last 10 s)']);
  // The line logged opens a new window.
  at(12_000);
  repeats.warn('frame 216 skipped (decode): cam: not a PNG');
  assert.equal(lines.length, 2);
});

test('a kind that stopped repeating is logged plainly when it comes back, with no count', () => {
  const { repeats, lines, at } = limiter();
  repeats.error('frame 1 failed in inference: worker exited');
  at(60_000);
  repeats.error('frame 900 failed in inference: worker exited');
  assert.deepEqual(lines, ['error frame 1 failed in inference: worker exited', 'error frame 900 failed in inference: worker exited']);
});

test('two failures are two kinds, each with its own window and count; so are two levels', () => {
  const { repeats, lines, at } = limiter();
  repeats.warn('frame 1 skipped (decode): cam: not a PNG');
  repeats.error('score not published: broker refused');
  repeats.error('frame 2 skipped (decode): cam: not a PNG');
  repeats.warn('frame 3 skipped (decode): cam: not a PNG');
  repeats.error('score not published: broker refused');
  repeats.error('event not published: broker refused');
  assert.deepEqual(lines, [
    'warn frame 1 skipped (decode): cam: not a PNG',
    'error score not published: broker refused',
    'error frame 2 skipped (decode): cam: not a PNG',
    'error event not published: broker refused',
  ]);
  at(10_000);
  repeats.error('score not published: broker refused');
  repeats.warn('frame 4 skipped (decode): cam: not a PNG');
  assert.deepEqual(lines.slice(4), [
    'error score not published: broker refused (and 1 more like it in the last 10 s)',
    'warn frame 4 skipped (decode): cam: not a PNG (and 1 more like it in the last 10 s)',
  ]);
});

test('flush logs what is still held, once: the newest line with the count of the ones before it', () => {
  const { repeats, lines, at } = limiter();
  for (let i = 1; i <= 50; i++) {
    at(i * 20);
    repeats.warn(`frame ${i} skipped (decode): cam: not a PNG`);
  }
  repeats.error('score not published: broker refused');
  repeats.error('score not published: broker refused');
  repeats.error('event not published: broker refused');
  at(2500);
  repeats.flush();
  assert.deepEqual(lines, [
    'warn frame 1 skipped (decode): cam: not a PNG',
    'error score not published: broker refused',
    'error event not published: broker refused',
    'warn frame 50 skipped (decode): cam: not a PNG (and 48 more like it in the last 2 s)',
    // One held back: it is logged itself, with no count to add.
    'error score not published: broker refused',
  ]);
  repeats.flush();
  assert.equal(lines.length, 5, 'a second flush has nothing more to say');
  // Flushed kinds are forgotten: the next line is logged at once.
  repeats.warn('frame 51 skipped (decode): cam: not a PNG');
  assert.equal(lines.at(-1), 'warn frame 51 skipped (decode): cam: not a PNG');
});

test('kinds are bounded: when a message changes kind every time, the oldest kind is flushed and forgotten', () => {
  const { repeats, lines } = limiter();
  repeats.warn('first kind');
  repeats.warn('first kind');
  for (let i = 0; i < 64; i++) repeats.warn(`kind ${String.fromCharCode(65 + (i % 26))}${String.fromCharCode(65 + Math.floor(i / 26))}`);
  assert.equal(lines.length, 1 + 64 + 1);
  assert.equal(lines.at(-1), 'warn first kind', 'its held line said when it was dropped');
  repeats.warn('first kind');
  assert.equal(lines.at(-1), 'warn first kind', 'logged at once: forgotten');
  assert.equal(lines.length, 67);
});

test('a burst that stopped is told when its window is over, not at the next stop', () => {
  const { repeats, lines, at, fire, timers } = limiter();
  for (let i = 1; i <= 5; i++) {
    at(i * 40);
    repeats.warn(`frame ${i} skipped (decode): cam: not a PNG`);
  }
  at(10_039);
  fire();
  assert.deepEqual(lines, ['warn frame 1 skipped (decode): cam: not a PNG'], 'the window is not over yet');
  at(10_040);
  fire();
  assert.deepEqual(lines, ['warn frame 1 skipped (decode): cam: not a PNG', 'warn frame 5 skipped (decode): cam: not a PNG (and 3 more like it in the last 10 s)']);
  assert.equal(timers(), 0, 'nothing held, nothing scheduled');
  repeats.flush();
  assert.equal(lines.length, 2, 'the stop has nothing left to say');
});

test('a failure on every frame logs one line per window, and every frame is logged or counted', () => {
  const { repeats, lines, at, fire } = limiter();
  // 30 fps for 35 s, the timers running as a real event loop would run them between frames.
  const frames = 35 * 30;
  for (let i = 0; i < frames; i++) {
    at(Math.round((i * 1000) / 30));
    fire();
    repeats.error(`frame ${i} failed in inference: worker exited`);
  }
  at(35_000);
  repeats.flush();
  assert.deepEqual(
    lines.map((l) => l.replace(/frame \d+/, 'frame N')),
    [
      'error frame N failed in inference: worker exited',
      // The first window's 299 held lines: the newest is told, with the 298 before it.
      'error frame N failed in inference: worker exited (and 298 more like it in the last 10 s)',
      // The frame at 10 s came just after that line: a full 300 per window from then on.
      'error frame N failed in inference: worker exited (and 299 more like it in the last 10 s)',
      'error frame N failed in inference: worker exited (and 299 more like it in the last 10 s)',
      'error frame N failed in inference: worker exited (and 149 more like it in the last 5 s)',
    ],
  );
  const said = lines.reduce((sum, l) => sum + 1 + Number(/ \(and (\d+) more like it/.exec(l)?.[1] ?? 0), 0);
  assert.equal(said, frames);
});

test('a line after the window whose timer has not run yet carries the count and cancels the timer', () => {
  const { repeats, lines, at, fire, timers } = limiter();
  repeats.warn('score not published: broker refused');
  repeats.warn('score not published: broker refused');
  assert.equal(timers(), 1);
  at(10_000);
  repeats.warn('score not published: broker refused');
  assert.equal(lines.at(-1), 'warn score not published: broker refused (and 1 more like it in the last 10 s)');
  assert.equal(timers(), 0);
  fire();
  assert.equal(lines.length, 2, 'told once');
});

test('flush and the bound on kinds cancel the timers of what they tell', () => {
  const { repeats, lines, at, fire, timers } = limiter();
  repeats.warn('score not published: broker refused');
  repeats.warn('score not published: broker refused');
  repeats.flush();
  assert.equal(timers(), 0);
  at(10_000);
  fire();
  assert.equal(lines.length, 2, 'the held line was told by flush, and only there');

  // The bound: 64 newer kinds push a held one out, which tells it and cancels its timer.
  const bounded = limiter();
  bounded.repeats.warn('score not published: broker refused');
  bounded.repeats.warn('score not published: broker refused');
  assert.equal(bounded.timers(), 1);
  for (let i = 1; i <= 64; i++) bounded.repeats.warn(`kind ${'x'.repeat(i)}`);
  assert.equal(bounded.timers(), 0);
  assert.equal(bounded.lines.filter((l) => l.startsWith('warn score not published')).length, 2);
  bounded.at(10_000);
  bounded.fire();
  assert.equal(bounded.lines.length, 66, 'the pushed-out line was told once');
});

test('the default timer is a real one: a held line is told about one window later without another line', async () => {
  const lines: string[] = [];
  const repeats = new RepeatLimiter({ warn: (m) => lines.push(m), error: (m) => lines.push(m) }, { windowMs: 50 });
  repeats.warn('frame 1 skipped (decode): cam: not a PNG');
  repeats.warn('frame 2 skipped (decode): cam: not a PNG');
  repeats.warn('frame 3 skipped (decode): cam: not a PNG');
  assert.equal(lines.length, 1);
  // Unref'd, so something must hold the event loop open while the test waits.
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual(lines, ['frame 1 skipped (decode): cam: not a PNG', 'frame 3 skipped (decode): cam: not a PNG (and 1 more like it in the last 1 s)']);
});

test('the kind masks what changes per frame (digits) and keeps the words', () => {
  assert.equal(repeatKind('frame 12 skipped (decode): cam-3.png: 1920x1080'), repeatKind('frame 7 skipped (decode): cam-4.png: 640x480'));
  assert.notEqual(repeatKind('frame 12 skipped (decode): cam: not a PNG'), repeatKind('frame 12 skipped (size): cam: too large'));
});
