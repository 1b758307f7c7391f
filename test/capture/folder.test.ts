import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CameraConfigSchema, createFrameSource, type CaptureLog, type CaptureStats } from '../../src/capture/index.js';
import type { Frame, SourceStatus } from '../../src/capture/frame.js';

/** Collects frames and statuses until `until` holds, or fails after `timeoutMs`. */
async function collect(
  cfg: unknown,
  until: (frames: Frame[], statuses: SourceStatus[]) => boolean,
  timeoutMs = 5000,
  log?: CaptureLog,
): Promise<{ frames: Frame[]; statuses: SourceStatus[]; stats: CaptureStats }> {
  const source = createFrameSource(CameraConfigSchema.parse(cfg), log ? { log } : {});
  const frames: Frame[] = [];
  const statuses: SourceStatus[] = [];
  const deadline = Date.now() + timeoutMs;
  await source.start((f) => frames.push(f), (s) => statuses.push(s));
  try {
    while (!until(frames, statuses)) {
      if (Date.now() > deadline) throw new Error(`timed out; statuses ${JSON.stringify(statuses)}, ${frames.length} frames`);
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    await source.stop();
  }
  return { frames, statuses, stats: source.stats() as CaptureStats };
}

async function folderWith(names: string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'capture-folder-'));
  for (const n of names) await writeFile(join(dir, n), `bytes of ${n}`);
  return dir;
}

test('folder: images in natural name order, looped, as encoded frames at no more than the fps', async () => {
  const dir = await folderWith(['img10.png', 'img2.jpg', 'img1.JPEG', 'notes.txt']);
  const t0 = performance.now();
  const { frames, statuses } = await collect({ type: 'folder', name: 'cam', path: dir, fps: 20 }, (f) => f.length >= 7);
  const elapsed = performance.now() - t0;
  const order = frames.slice(0, 7).map((f) => f.origin?.slice(dir.length + 1));
  assert.deepEqual(order, ['img1.JPEG', 'img2.jpg', 'img10.png', 'img1.JPEG', 'img2.jpg', 'img10.png', 'img1.JPEG']);
  assert.deepEqual(frames.slice(0, 7).map((f) => f.index), [0, 1, 2, 3, 4, 5, 6]);
  const first = frames[0]!;
  assert.equal(first.format, 'encoded');
  assert.equal(first.data.toString(), 'bytes of img1.JPEG');
  assert.ok(first.capturedAt > Date.now() - 60_000 && first.capturedMono > 0);
  // 7 frames at 20 fps span at least 6 intervals of 50 ms (a lower bound: the cap holds).
  assert.ok(elapsed >= 6 * 50 - 10, `7 frames came in ${elapsed} ms, faster than 20 fps`);
  assert.equal(statuses[0]?.state, 'starting');
  assert.equal(statuses[1]?.state, 'streaming');
  await rm(dir, { recursive: true });
});

test('folder: an unreadable entry is counted and skipped, the rest still play', async () => {
  const dir = await folderWith(['a.png', 'c.png']);
  await mkdir(join(dir, 'b.png')); // readFile fails with EISDIR, like a file that cannot be read
  const { frames, stats } = await collect({ type: 'folder', name: 'cam', path: dir, fps: 50 }, (f) => f.length >= 4);
  assert.deepEqual(frames.slice(0, 4).map((f) => f.origin?.slice(dir.length + 1)), ['a.png', 'c.png', 'a.png', 'c.png']);
  assert.ok(stats.drops.unreadable >= 1);
  assert.equal(stats.dropped, stats.drops.unreadable);
  await rm(dir, { recursive: true });
});

test('folder: a FIFO or a device named like an image is skipped naming it, without blocking the camera', async () => {
  const dir = await folderWith(['a.png', 'd.png']);
  // Opening a FIFO for reading waits for a writer: forever, and a libuv pool thread with it.
  execFileSync('mkfifo', [join(dir, 'b.png')]);
  // /dev/zero never ends: read whole, it would grow memory until Node gives up at 2 GiB.
  await symlink('/dev/zero', join(dir, 'c.png'));
  const lines: string[] = [];
  const { frames, stats } = await collect({ type: 'folder', name: 'cam', path: dir, fps: 50 }, (f) => f.length >= 4, 5000, (_level, line) => lines.push(line));
  assert.deepEqual(frames.slice(0, 4).map((f) => f.origin?.slice(dir.length + 1)), ['a.png', 'd.png', 'a.png', 'd.png']);
  assert.ok(stats.drops.unreadable >= 2);
  for (const name of ['b.png', 'c.png']) assert.ok(lines.some((l) => l.includes(`${join(dir, name)}: not a regular file`)), lines.join('\n'));
  await rm(dir, { recursive: true });
});

test('folder: a file over maxFileBytes is skipped naming it, never read', async () => {
  const dir = await folderWith(['a.png', 'c.png']);
  // A stray video or disk image named like a frame: 4 MiB of it against a 1 MiB limit.
  await writeFile(join(dir, 'b.png'), Buffer.alloc(4 << 20));
  const lines: string[] = [];
  const { frames, stats } = await collect({ type: 'folder', name: 'cam', path: dir, fps: 50, maxFileBytes: 1 << 20 }, (f) => f.length >= 4, 5000, (_level, line) => lines.push(line));
  assert.deepEqual(frames.slice(0, 4).map((f) => f.origin?.slice(dir.length + 1)), ['a.png', 'c.png', 'a.png', 'c.png']);
  assert.ok(stats.drops.unreadable >= 1);
  assert.ok(lines.some((l) => l.includes(`${join(dir, 'b.png')}: 4194304 bytes, over maxFileBytes (1048576)`)), lines.join('\n'));
  await rm(dir, { recursive: true });
});

test('folder: a missing folder reports no_frames, then plays once it appears', async () => {
  const parent = await mkdtemp(join(tmpdir(), 'capture-folder-'));
  const dir = join(parent, 'later');
  let created = false;
  const { frames, statuses } = await collect({ type: 'folder', name: 'cam', path: dir, fps: 20 }, (f, s) => {
    if (!created && s.some((x) => x.state === 'no_frames')) {
      created = true;
      void mkdir(dir).then(() => writeFile(join(dir, 'x.png'), 'x'));
    }
    return f.length >= 1;
  });
  const noFrames = statuses.find((s) => s.state === 'no_frames');
  assert.match(noFrames?.message ?? '', /cannot list .*later: ENOENT/);
  assert.equal(frames[0]?.origin, join(dir, 'x.png'));
  assert.deepEqual(statuses.map((s) => s.state), ['starting', 'no_frames', 'streaming', 'stopped']);
  await rm(parent, { recursive: true });
});

test('folder: loop false stops after one pass; enabled false never starts', async () => {
  const dir = await folderWith(['a.png', 'b.png']);
  const once = await collect({ type: 'folder', name: 'cam', path: dir, fps: 50, loop: false }, (_f, s) => s.some((x) => x.state === 'stopped'));
  assert.equal(once.frames.length, 2);
  assert.match(once.statuses.at(-1)?.message ?? '', /end of folder/);

  const off = await collect({ type: 'folder', name: 'cam', path: dir, enabled: false }, (_f, s) => s.length > 0);
  assert.deepEqual(off.statuses, [{ camera: 'cam', state: 'disabled', message: 'enabled: false in the config' }]);
  assert.equal(off.frames.length, 0);
  await rm(dir, { recursive: true });
});
