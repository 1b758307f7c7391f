/**
 * The benchmark helpers (numbers, table, options), not the speed of anything: benchmarks
 * are run on demand by `npm run bench` and never asserted on.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { childNamed, processCpuNs } from '../../bench/camera.js';
import { parseOptions } from '../../bench/context.js';
import { readRss, trendPerSecond } from '../../bench/memory.js';
import { formatTable, unavailable } from '../../bench/report.js';
import { formatRatio, percentile, spread } from '../../bench/stats.js';
import { REPO_ROOT } from '../harness/paths.js';

test('percentiles interpolate between ranks like numpy', () => {
  const xs = [5, 1, 4, 2, 3];
  assert.equal(percentile(xs, 0), 1);
  assert.equal(percentile(xs, 50), 3);
  assert.equal(percentile(xs, 100), 5);
  assert.equal(percentile([10, 20], 25), 12.5);
  assert.ok(Number.isNaN(percentile([], 50)));
  const s = spread(Array.from({ length: 101 }, (_, i) => i));
  assert.deepEqual([s.n, s.p50, s.p95, s.p99, s.max], [101, 50, 95, 99, 100]);
});

test('the late RSS trend ignores start-up growth and finds a steady climb', () => {
  // Start-up: +20 MiB in the first 100 s, then flat with a ±3 MiB sawtooth.
  const flat: Array<[number, number]> = Array.from({ length: 300 }, (_, i) => [i * 2, i < 50 ? 240 + i * 0.4 : 260 + ((i % 4) - 1.5) * 2]);
  assert.ok(Math.abs(trendPerSecond(flat, 300) * 3600) < 10, `flat run: ${trendPerSecond(flat, 300) * 3600} MiB/h`);
  // A leak of 1 MiB a minute after start-up.
  const leak: Array<[number, number]> = flat.map(([t, v]) => [t, v + t / 60]);
  assert.ok(Math.abs(trendPerSecond(leak, 300) * 3600 - 60) < 5);
  assert.equal(trendPerSecond([[0, 1]], 0), 0);
});

test('ratios are formatted, missing ones shown as a dash', () => {
  assert.equal(formatRatio(2.345), '2.35×');
  assert.equal(formatRatio(undefined), '-');
  assert.equal(formatRatio(Number.POSITIVE_INFINITY), '-');
});

test('the table lines up its columns and lists every note; an unavailable figure is never a number', () => {
  const text = formatTable([
    { name: 'a', rows: [{ bench: 'a', figure: 'speed', value: '10 fps', baseline: 'bare 20 fps', ratio: '0.50×', goal: '≥ 0.95', met: false }], notes: ['why'], data: {} },
    unavailable('b', 'thing', 'needs checkpoint.pt'),
  ]);
  const lines = text.split('\n');
  const bars = (line: string) => [...line.matchAll(/\|/g)].map((m) => m.index);
  assert.deepEqual(bars(lines[2]!), bars(lines[0]!).slice(0, bars(lines[2]!).length));
  assert.match(text, /\| NO$/m);
  assert.match(text, /b +\| thing +\| not measured/);
  assert.match(text, /\[a\] why/);
  assert.match(text, /\[b\] needs checkpoint\.pt/);
});

test('options: defaults, and bad values named with what was given', () => {
  const o = parseOptions(['--quick', '--threads', '3', '--only', 'pipeline,latency', '--bundle', 'x']);
  assert.notEqual(o, 'help');
  if (o === 'help') return;
  assert.equal(o.threads, 3);
  assert.equal(o.memoryMinutes, 1);
  assert.deepEqual(o.only, ['pipeline', 'latency']);
  assert.equal(parseOptions(['--help']), 'help');
  assert.throws(() => parseOptions(['--threads', '0']), /--threads: .*received "0"/);
  assert.throws(() => parseOptions(['--only', 'pipeline,speed']), /--only: .*received "pipeline,speed"/);
  assert.throws(() => parseOptions(['--memory-minutes', 'ten']), /--memory-minutes: .*received "ten"/);
  assert.throws(() => parseOptions(['--fast']), /Unknown option '--fast'[\s\S]*npm run bench/);
});

test('a process\'s CPU time sums its threads; a child is found by its command name', async () => {
  const before = processCpuNs(process.pid);
  for (const until = performance.now() + 50; performance.now() < until; );
  const spent = processCpuNs(process.pid) - before;
  assert.ok(spent >= 30e6, `50 ms of spinning read as ${(spent / 1e6).toFixed(1)} ms of CPU`);
  const child = spawn('sleep', ['5']);
  try {
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(childNamed(process.pid, 'sleep'), child.pid);
    assert.equal(childNamed(process.pid, 'no-such-command'), undefined);
  } finally {
    child.kill();
  }
});

test('RSS is read from /proc for a live process', async () => {
  const { rssMb, peakMb } = await readRss(process.pid);
  assert.ok(rssMb > 1 && peakMb >= rssMb, `rss ${rssMb} peak ${peakMb}`);
  await assert.rejects(readRss(2 ** 22 + 12345), /ENOENT/);
});

test('npm run bench refuses a folder that is not a bundle, naming it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-nobundle-'));
  try {
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'dist', 'bench', 'run.js'), '--bundle', dir, '--only', 'quantization'], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${dir}: no manifest.json`));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
