/**
 * The repeat limiter on a clock the test moves: the first line of a kind is logged, repeats
 * within the window are counted, the next one after it carries the count, kinds are held
 * apart, and flush() says what is still held.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RepeatLimiter, repeatKind } from '../../src/util/repeat-log.js';

/** A limiter writing `level message` lines into `lines`, on a clock set by `at(ms)`. */
function limiter(windowMs = 10_000): { repeats: RepeatLimiter; lines: string[]; at: (ms: number) => void } {
  const lines: string[] = [];
  let now = 0;
  const repeats = new RepeatLimiter(
    { warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`) },
    { windowMs, now: () => now },
  );
  return { repeats, lines, at: (ms) => (now = ms) };
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

test('the kind masks what changes per frame (digits) and keeps the words', () => {
  assert.equal(repeatKind('frame 12 skipped (decode): cam-3.png: 1920x1080'), repeatKind('frame 7 skipped (decode): cam-4.png: 640x480'));
  assert.notEqual(repeatKind('frame 12 skipped (decode): cam: not a PNG'), repeatKind('frame 12 skipped (size): cam: too large'));
});
