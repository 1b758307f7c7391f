/**
 * The daemon's real per-camera path, in this process: a source, the inference Detector
 * (onnxruntime worker), the scoring decision, the MQTT FleetLink publishing QoS 1 through its
 * outbox to a real Mosquitto on loopback, and a subscriber on that broker that sees each
 * score arrive. Only the frame source differs between benchmarks.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import mqtt from 'mqtt';
import { z } from 'zod';
import { FolderCameraSchema, type CameraConfig } from '../src/capture/config.js';
import { FolderSource } from '../src/capture/folder-source.js';
import type { Frame, FrameSource, FrameSourceStats, SourceStatus } from '../src/capture/frame.js';
import { silentLog } from '../src/capture/reporter.js';
import { ScoringConfigSchema } from '../src/config/schema.js';
import { CameraPipeline, type FrameDetector } from '../src/daemon/camera-pipeline.js';
import { openDetector, type DetectionTimings, type Detector } from '../src/inference/detector.js';
import { LiveDetector } from '../src/inference/live-detector.js';
import { HeapTrimmer } from '../src/daemon/heap-trim.js';
import { favorInference, type InferencePriority } from '../src/daemon/priority.js';
import { InferenceConfigSchema } from '../src/inference/config.js';
import { MqttConfigSchema } from '../src/mqtt/config.js';
import { MqttFleetLink } from '../src/mqtt/fleet-link.js';
import { nativePostprocessor } from '../src/native/postprocessor.js';
import { nativePreprocessor } from '../src/native/preprocessor.js';
import { CameraSeq } from '../src/scoring/seq.js';
import { createLogger, type Logger } from '../src/util/log.js';
import { Mosquitto } from '../test/harness/mosquitto.js';

/**
 * A source that always keeps exactly one frame waiting for inference: the next frame is
 * offered the moment the detector takes the previous one. The pipeline never idles and no
 * frame is dropped, without a busy loop competing for the CPU (frames are the same encoded
 * images the folder source would read, held in memory).
 */
export class SaturatingSource implements FrameSource {
  #onFrame: ((frame: Frame) => void) | undefined;
  #index = 0;
  #running = false;

  constructor(
    readonly camera: string,
    private readonly images: readonly Buffer[],
  ) {}

  async start(onFrame: (frame: Frame) => void, onStatus: (status: SourceStatus) => void): Promise<void> {
    this.#onFrame = onFrame;
    onStatus({ camera: this.camera, state: 'streaming' });
  }

  /** Starts offering frames (one now, then one per frame taken). */
  resume(): void {
    this.#running = true;
    this.offer();
  }

  pause(): void {
    this.#running = false;
  }

  offer(): void {
    if (!this.#running || !this.#onFrame) return;
    const i = this.#index++;
    this.#onFrame({
      camera: this.camera,
      index: i,
      capturedAt: Date.now(),
      capturedMono: performance.now(),
      format: 'encoded',
      width: 0,
      height: 0,
      data: this.images[i % this.images.length]!,
    });
  }

  async stop(): Promise<void> {
    this.#running = false;
  }

  stats(): FrameSourceStats {
    return { frames: this.#index, dropped: 0, restarts: 0, stalls: 0, restartsLastHour: 0, stallsLastHour: 0 };
  }
}

const ScorePayloadSchema = z.object({ ts: z.string(), seq: z.number().int() });

/** Arrival of one score message at the subscriber. */
export interface Arrival {
  at: number;
  /** Capture → arrival at the subscriber, ms (monotonic clock). */
  latencyMs: number;
}

interface Camera {
  pipeline: CameraPipeline;
  arrivals: Arrival[];
}

export interface Rig {
  detector: Detector;
  /** Frames each camera keeps queued behind the one in inference (inference.framesAhead). */
  framesAhead: number;
  /** Why the daemon's inference-first thread priorities are off in this rig, or undefined when they apply. */
  priorityOff: string | undefined;
  /** Where each detected frame's time went (all cameras), in detection order. */
  timings: DetectionTimings[];
  /** A camera fed as fast as the pipeline takes frames. */
  saturating(name: string): Promise<{ source: SaturatingSource; arrivals: Arrival[] }>;
  /** A camera on the real folder source at a fixed rate. */
  folder(name: string, path: string, fps: number): Promise<{ arrivals: Arrival[]; stop: () => Promise<void> }>;
  close(): Promise<void>;
}

export async function openRig(options: { bundleDir: string; threads: number; imageFiles: readonly string[]; framesAhead?: number }): Promise<Rig> {
  const images = await Promise.all(options.imageFiles.map((f) => readFile(f)));
  const state = await mkdtemp(join(tmpdir(), 'moead-bench-'));
  const broker = await Mosquitto.start();
  const log = createLogger('bench', 'error');
  let detector: Detector | undefined;
  let link: MqttFleetLink | undefined;
  let subscriber: mqtt.MqttClient;
  try {
    // Pre- and post-processing as the daemon does it: the native kernels where the addon loads.
    const { preprocessor } = nativePreprocessor();
    const { postprocessor, overlay } = nativePostprocessor();
    detector = await openDetector({
      bundleDir: options.bundleDir,
      backend: { providers: ['cpu'], threads: options.threads },
      ...(preprocessor ? { preprocessor } : {}),
      ...(postprocessor ? { postprocessor } : {}),
      ...(overlay ? { overlay } : {}),
    });
    link = new MqttFleetLink(MqttConfigSchema.parse({ url: broker.url, device: 'bench' }), { stateDir: state });
    await link.start();
    subscriber = await mqtt.connectAsync(broker.url, { clientId: 'bench-subscriber' });
  } catch (err) {
    // Leave nothing behind: no broker, no worker thread, no temporary folder.
    await link?.stop().catch(() => undefined);
    await detector?.close().catch(() => undefined);
    await broker.teardown();
    await rm(state, { recursive: true, force: true });
    throw err;
  }
  // Thread priorities as the daemon sets them with its default config and these threads.
  const defaults = InferenceConfigSchema.parse({});
  const priority = favorInference({ nice: defaults.housekeepingNice, threads: options.threads, inferenceThreadIds: () => detector.inferenceThreadIds() });
  const framesAhead = options.framesAhead ?? defaults.framesAhead;
  // The daemon's full collections on a heap budget too (this process has `gc` when started
  // through scripts/daemon-node.sh, as `npm run bench` is).
  const trimmer = new HeapTrimmer(globalThis.gc);
  trimmer.start();
  return wire({ state, broker, detector, link, subscriber, log, images, priority, trimmer, framesAhead });
}

interface RigParts {
  state: string;
  broker: Mosquitto;
  detector: Detector;
  link: MqttFleetLink;
  subscriber: mqtt.MqttClient;
  log: Logger;
  images: readonly Buffer[];
  priority: InferencePriority;
  trimmer: HeapTrimmer;
  framesAhead: number;
}

function wire({ state, broker, detector, link, subscriber, log, images, priority, trimmer, framesAhead }: RigParts): Rig {
  // The daemon's defaults (events and their snapshots included), as a user runs it.
  const scoring = ScoringConfigSchema.parse({});

  // Capture time of each frame, keyed by camera and its `ts` (ms): the payload carries only
  // wall-clock milliseconds, the monotonic capture time gives sub-millisecond latencies.
  const captured = new Map<string, number>();
  const cameras = new Map<string, Camera>();
  const timings: DetectionTimings[] = [];
  subscriber.on('message', (topic, payload) => {
    const at = performance.now();
    for (const [name, camera] of cameras) {
      if (topic !== link.topics.score(name)) continue;
      const body = ScorePayloadSchema.parse(JSON.parse(payload.toString('utf8')));
      const key = `${name}@${body.ts}`;
      const t0 = captured.get(key);
      captured.delete(key);
      if (t0 !== undefined) camera.arrivals.push({ at, latencyMs: at - t0 });
    }
  });

  // The daemon runs its model behind a LiveDetector (replaceable by an update): so does the rig.
  const live = new LiveDetector(detector);
  const addCamera = async (config: CameraConfig, source: FrameSource, onTaken?: () => void): Promise<Camera> => {
    const traced: FrameDetector = {
      manifest: live.manifest,
      prepare: (frame) => {
        captured.set(`${frame.camera}@${new Date(frame.capturedAt).toISOString()}`, frame.capturedMono);
        onTaken?.();
        return live.prepare(frame);
      },
      infer: (prepared) =>
        live.infer(prepared).then((detection) => {
          timings.push(detection.timings);
          return detection;
        }),
      snapshot: (frame, detection, opts) => live.snapshot(frame, detection, opts),
    };
    await subscriber.subscribeAsync(link.topics.score(config.name), { qos: 1 });
    const pipeline = new CameraPipeline({
      camera: config,
      source,
      detector: traced,
      link,
      seq: await CameraSeq.open(state, config.name),
      scoring: () => scoring,
      stuckTimeoutS: 30,
      framesAhead,
      log: log.child(config.name),
    });
    const camera = { pipeline, arrivals: [] };
    cameras.set(config.name, camera);
    await pipeline.start();
    return camera;
  };

  return {
    detector,
    framesAhead,
    priorityOff: priority.off,
    timings,
    async saturating(name) {
      const source = new SaturatingSource(name, images);
      // The pipeline reads only the camera's name from its config; the frames come from `source`.
      const config = FolderCameraSchema.parse({ type: 'folder', name, path: '(memory)' });
      const camera = await addCamera(config, source, () => source.offer());
      return { source, arrivals: camera.arrivals };
    },
    async folder(name, path, fps) {
      const config = FolderCameraSchema.parse({ type: 'folder', name, path, fps, loop: true });
      const camera = await addCamera(config, new FolderSource(config, silentLog));
      const stop = async () => {
        cameras.delete(name);
        await camera.pipeline.stop();
      };
      return { arrivals: camera.arrivals, stop };
    },
    async close() {
      priority.stop();
      trimmer.stop();
      for (const camera of cameras.values()) await camera.pipeline.stop();
      await subscriber.endAsync();
      await link.stop();
      await live.close();
      await broker.teardown();
      await rm(state, { recursive: true, force: true });
    },
  };
}

/** Arrivals inside [from, to), as frames per second. */
export function arrivalRate(arrivals: readonly Arrival[], from: number, to: number): number {
  const n = arrivals.filter((a) => a.at >= from && a.at < to).length;
  return (n * 1000) / (to - from);
}

/** Waits until no score has arrived for `quietMs` (the frames still in the pipeline are done). */
export async function settle(arrivals: readonly Arrival[], quietMs = 300): Promise<void> {
  for (let seen = -1; seen !== arrivals.length; ) {
    seen = arrivals.length;
    await sleep(quietMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
