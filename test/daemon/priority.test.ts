/**
 * Inference first: the threads running the model keep normal priority, the main thread
 * keeps it too (later workers inherit it), every other thread of the process is moved to
 * the configured nice value. Checked on real threads of this process, read back from /proc.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { getPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadBundle } from '../../src/bundle/load.js';
import { favorInference, HousekeepingPriority, housekeepingPriorityOff } from '../../src/daemon/priority.js';
import { OnnxruntimeBackend } from '../../src/inference/onnxruntime-backend.js';
import { InferenceConfigSchema } from '../../src/inference/config.js';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { currentThreadId, processThreadIds, threadCpuTimes } from '../../src/util/threads.js';

const linux = process.platform === 'linux';
const SHIPPED = join(PACKAGE_ROOT, 'models', 'quantized', 'moead-mnv2-synth');

describe('when the policy applies', () => {
  test('on by default, off at nice 0, off where inference takes every core, off outside Linux', () => {
    const { housekeepingNice } = InferenceConfigSchema.parse({});
    assert.equal(housekeepingNice, 10);
    assert.equal(housekeepingPriorityOff({ nice: 10, inferenceThreads: 1, platform: 'linux', cores: 2 }), undefined);
    assert.equal(housekeepingPriorityOff({ nice: 10, inferenceThreads: 3, platform: 'linux', cores: 4 }), undefined);
    assert.match(housekeepingPriorityOff({ nice: 0, inferenceThreads: 1, platform: 'linux', cores: 2 }) ?? '', /housekeepingNice is 0/);
    assert.match(housekeepingPriorityOff({ nice: 10, inferenceThreads: 0, platform: 'linux', cores: 2 }) ?? '', /every core \(default threads on 2 cores\)/);
    assert.match(housekeepingPriorityOff({ nice: 10, inferenceThreads: 4, platform: 'linux', cores: 4 }) ?? '', /inference\.threads below 4/);
    assert.match(housekeepingPriorityOff({ nice: 10, inferenceThreads: 1, platform: 'darwin', cores: 8 }) ?? '', /darwin/);
  });

  test('the config refuses nice values outside 0..19, naming the field', () => {
    const bad = InferenceConfigSchema.safeParse({ housekeepingNice: 20 });
    assert.equal(bad.success, false);
    assert.deepEqual(bad.error?.issues[0]?.path, ['housekeepingNice']);
    assert.equal(InferenceConfigSchema.safeParse({ housekeepingNice: -1 }).success, false);
  });
});

describe('on the threads of this process', { skip: linux ? false : 'thread priorities are per thread only on Linux' }, () => {
  test('the main thread is the process id, and listed', () => {
    assert.equal(currentThreadId(), process.pid);
    assert.ok(processThreadIds().includes(process.pid));
  });

  test("a thread's CPU time grows while it computes; a thread that does not exist reads as undefined", () => {
    const before = threadCpuTimes(process.pid);
    assert.ok(before && before.runNs > 0 && before.waitNs >= 0);
    const until = performance.now() + 30;
    while (performance.now() < until) Math.sqrt(Math.random());
    const after = threadCpuTimes(process.pid)!;
    assert.ok(after.runNs - before.runNs >= 10e6, `ran ${(after.runNs - before.runNs) / 1e6} ms`);
    assert.equal(threadCpuTimes(0x7ffffffe), undefined);
  });

  test('the onnxruntime worker and its pool stay at normal priority; the others move', async () => {
    const backend = new OnnxruntimeBackend();
    await backend.load(await loadBundle(SHIPPED), { providers: ['cpu'], threads: 2, precision: 'int8' });
    try {
      const inference = backend.inferenceThreadIds();
      assert.ok(inference, 'the backend names its threads');
      // The worker itself, the intra-op thread onnxruntime starts for 2 threads, and one idle
      // thread onnxruntime starts with every session.
      assert.ok(inference.length >= 2, `inference threads ${inference.join(', ')}`);
      const all = processThreadIds();
      for (const tid of inference) assert.ok(all.includes(tid) && tid !== process.pid, `thread ${tid} is one of ours, not main`);
      // Make sure libuv's pool exists: those are housekeeping threads.
      await readFile(SHIPPED + '/manifest.json');
      const others = processThreadIds().filter((tid) => tid !== process.pid && !inference.includes(tid));
      assert.ok(others.length > 0);

      const priority = new HousekeepingPriority(7, () => backend.inferenceThreadIds());
      const lowered = priority.apply();
      assert.ok(lowered !== undefined && lowered >= others.length - 1, `lowered ${lowered} of ${others.length}`);
      assert.equal(getPriority(process.pid), 0, 'main thread untouched');
      for (const tid of inference) assert.equal(getPriority(tid), 0, `inference thread ${tid} untouched`);
      const moved = others.filter((tid) => {
        try {
          return getPriority(tid) === 7;
        } catch {
          return true; // ended meanwhile
        }
      });
      assert.deepEqual(moved, others);

      // Runs still work, and a second sweep never raises anyone back.
      const result = await backend.run(new Float32Array(3 * 224 * 224).fill(0.5), 1);
      assert.equal(result.maps.length, 14 * 14);
      new HousekeepingPriority(3, () => backend.inferenceThreadIds()).apply();
      assert.equal(getPriority(others[0]), 7);
    } finally {
      await backend.dispose();
    }
  });

  test('a backend that does not name its threads changes nothing', () => {
    const before = processThreadIds().map((tid) => [tid, getPriority(tid)]);
    assert.equal(new HousekeepingPriority(12, () => undefined).apply(), undefined);
    const policy = favorInference({ nice: 12, threads: 1, inferenceThreadIds: () => undefined });
    policy.stop();
    assert.equal(policy.lowered, undefined);
    assert.match(policy.off ?? '', /does not name its inference threads|every core/);
    assert.match(favorInference({ nice: 0, threads: 1, inferenceThreadIds: () => [process.pid] }).off ?? '', /housekeepingNice is 0/);
    assert.deepEqual(processThreadIds().map((tid) => [tid, getPriority(tid)]), before);
  });
});
