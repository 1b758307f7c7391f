/** Helpers shared by the mqtt tests: a link config for a test broker and score messages. */
import assert from 'node:assert/strict';
import { chmodSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MqttConfigSchema, type MqttConfig } from '../../src/mqtt/config.js';
import type { ScoreMessage } from '../../src/mqtt/link.js';

/** A config for `url` with short backoff so reconnects happen within a test's patience. */
export function testConfig(url: string | undefined, over: Record<string, unknown> = {}): MqttConfig {
  return MqttConfigSchema.parse({
    ...(url ? { url } : {}),
    device: 'dev1',
    backoff: { minMs: 50, maxMs: 400 },
    ...over,
  });
}

/** A link test's teardown, in the order that loses nothing: the link stops before its broker goes. */
export async function closeLinkTest(parts: {
  link: { stop(): Promise<void> };
  watcher: { close(): Promise<void> };
  broker: { teardown(): Promise<void> };
  state: { remove(): Promise<void> };
}): Promise<void> {
  await parts.link.stop();
  await parts.watcher.close();
  await parts.broker.teardown();
  await parts.state.remove();
}

export function score(seq: number, value = 0.5): ScoreMessage {
  return {
    ts: new Date().toISOString(),
    seq,
    score: value,
    threshold: 1,
    normalized: Math.min(1, Math.max(0, value / 2)),
    anomalous: value > 1,
    model: { name: 'moead-mnv2-synth', version: '1.0.0' },
    latency_ms: 12.5,
  };
}

/** Seqs of score payloads in arrival order. */
export function seqsOf(messages: Array<{ json(): unknown }>): number[] {
  return messages.map((m) => (m.json() as { seq: number }).seq);
}

/** Checks that `seqs`, de-duplicated, is exactly 0..last in order of first arrival; returns a problem or undefined. */
export function gapOrDisorder(seqs: number[], last: number): string | undefined {
  const seen = new Set<number>();
  const firsts: number[] = [];
  for (const s of seqs) {
    if (seen.has(s)) continue;
    seen.add(s);
    firsts.push(s);
  }
  const missing = [];
  for (let s = 0; s <= last; s++) if (!seen.has(s)) missing.push(s);
  if (missing.length) return `missing seqs ${missing.slice(0, 20).join(',')}${missing.length > 20 ? '…' : ''} (${missing.length})`;
  for (let i = 1; i < firsts.length; i++) if (firsts[i]! < firsts[i - 1]!) return `seq ${firsts[i]} first arrived after ${firsts[i - 1]}`;
  return undefined;
}

/** Highest seq received on `topic` so far (-1 before the first). */
export function maxSeq(w: { on(topic: string): Array<{ json(): unknown }> }, topic: string): number {
  return Math.max(-1, ...seqsOf(w.on(topic)));
}

/** Waits until seq `last` has arrived on `topic`, then asserts every seq 0..last came, in order. */
export async function expectEverySeq(w: { on(topic: string): Array<{ json(): unknown }> }, topic: string, last: number, timeoutMs: number): Promise<void> {
  await until(() => maxSeq(w, topic) >= last, timeoutMs, `seq ${last} at the subscriber`);
  const problem = gapOrDisorder(seqsOf(w.on(topic)), last);
  assert.equal(problem, undefined, problem);
}

export function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (pred()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

/** Mosquitto started as root drops to the `mosquitto` user, which must still read the files a test writes for it. */
export function readableByBroker(dir: string): void {
  chmodSync(dir, 0o755);
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
}
