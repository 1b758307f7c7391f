/**
 * `moead-edge run` as a child process with one camera, as a user runs it (the daemon's Node
 * flags through scripts/daemon-node.sh), publishing to a Mosquitto of its own, with a
 * subscriber counting its scores: what the memory and camera benchmarks measure.
 */
import { writeFile } from 'node:fs/promises';
import mqtt from 'mqtt';
import { deviceTopics } from '../src/mqtt/topics.js';
import { Mosquitto } from '../test/harness/mosquitto.js';
import { spawnCli, type ChildHandle } from '../test/harness/process.js';
import type { TempDir } from '../test/harness/tmp.js';
import type { BenchContext } from './context.js';

export interface DaemonUnderTest {
  child: ChildHandle;
  /** Scores a subscriber has received so far. */
  scores(): number;
  /** Resolves at the first score. */
  firstScore: Promise<void>;
  /** Stops the daemon, the subscriber and the broker. */
  stop(): Promise<void>;
}

/** `camera` is the camera's config entry without its name; state and config go under `dir`. */
export async function startDaemon(ctx: BenchContext, dir: TempDir, name: string, camera: Record<string, unknown>): Promise<DaemonUnderTest> {
  const { options, bundle } = ctx;
  const broker = await Mosquitto.start();
  const config = {
    logLevel: 'warn',
    stateDir: dir.file('state'),
    cameras: [{ ...camera, name }],
    inference: { model: bundle.dir, threads: options.threads, ...(options.framesAhead ? { framesAhead: options.framesAhead } : {}) },
    mqtt: { url: broker.url, device: name },
  };
  const configFile = dir.file('config.json');
  await writeFile(configFile, JSON.stringify(config, null, 2));
  const subscriber = await mqtt.connectAsync(broker.url, { clientId: `${name}-subscriber` });
  let scored = 0;
  let first: (() => void) | undefined;
  const firstScore = new Promise<void>((resolve) => (first = resolve));
  subscriber.on('message', () => {
    scored += 1;
    first?.();
  });
  await subscriber.subscribeAsync(deviceTopics('moead', name).score(name), { qos: 1 });
  const child = spawnCli(['run', '--config', configFile]);
  return {
    child,
    scores: () => scored,
    firstScore,
    async stop() {
      await child.stop(10_000);
      await subscriber.endAsync();
      await broker.teardown();
    },
  };
}
