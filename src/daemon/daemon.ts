/**
 * The composition root: config → board profile → bundle and detector → MQTT link →
 * per-camera pipelines → `online`. Stopping runs the same steps backwards, so nothing in
 * flight is lost: sources stop, frames in inference finish and publish, the link delivers
 * what it holds and says `offline`, the model is closed.
 */
import { performance } from 'node:perf_hooks';
import type { CameraConfig } from '../capture/config.js';
import type { FrameSource } from '../capture/frame.js';
import type { BoardProfile } from '../config/board.js';
import { loadBoard } from '../config/board.js';
import type { Config } from '../config/schema.js';
import type { ConfigStore } from '../config/store.js';
import type { BackendOptions } from '../inference/backend.js';
import type { Detector } from '../inference/detector.js';
import { LiveDetector } from '../inference/live-detector.js';
import { int8SaturationNote } from '../inference/cpu-int8.js';
import { describeRecovery, measureReferenceFrames, ModelStore, ModelUpdater, type ReferenceCheck, type StartupRecovery } from '../ota/index.js';
import { favorInference, type InferencePriority } from './priority.js';
import type { FleetLink } from '../mqtt/link.js';
import { thresholdProblems } from '../scoring/decide.js';
import { MetricsExporter } from '../telemetry/index.js';
import { CameraSeq } from '../scoring/seq.js';
import { dropOrphanedOpenEvents, OpenEventFile } from '../scoring/open-event.js';
import { removeLeftoverTemps } from '../util/atomic-write.js';
import { memoryAllocator } from '../util/allocator.js';
import { errorMessage, type Logger } from '../util/log.js';
import { CameraPipeline } from './camera-pipeline.js';
import { registerCommands, type Commands } from './commands.js';
import { HeapTrimmer } from './heap-trim.js';
import { modelChangeAnnouncer } from './model-announcer.js';
import { ModelReopener } from './reopen.js';
import { buildTelemetry, CpuMeter, type ReferenceCheckSummary } from './telemetry.js';
import { watchLines } from './watch-lines.js';

export interface LinkHandle {
  link: FleetLink;
  /** Where MQTT clients reach the broker the daemon publishes to (known once the link started). */
  url(): string;
  /** True when the daemon runs the broker itself (no mqtt.url configured). */
  embedded: boolean;
  /** `<base>/<device>`, the root of every topic. */
  root: string;
  stats?: () => Record<string, unknown>;
}

export interface InferenceChoice {
  backend: 'onnxruntime' | 'native';
  /** The board profile's name, for messages about where a choice came from. */
  board: string;
  /** Whether the backend was the user's choice (config) or the board profile's default. */
  backendFrom: 'config' | 'board';
  options: BackendOptions;
}

/** How the daemon gets its parts; tests and other boards can swap them. */
export interface DaemonParts {
  /** Opens a bundle folder (the configured model, an installed update, an update's candidate). */
  openDetector(bundleDir: string, inference: InferenceChoice, log: Logger): Promise<Detector>;
  /** `model` says which model is in force when the link asks (discovery, Sparkplug births). */
  createLink(config: Config, model: () => { name: string; version: string }, log: Logger): Promise<LinkHandle>;
  createSource(camera: CameraConfig, board: BoardProfile, log: Logger): FrameSource;
}

/**
 * Backend, providers and threads: the config's where the user set them, else the board
 * profile's. Precision always comes from the board (it is a property of the hardware).
 */
export function chooseInference(config: Config, board: BoardProfile, store: ConfigStore): InferenceChoice {
  const pick = <K extends 'backend' | 'providers' | 'threads'>(key: K): Config['inference'][K] | BoardProfile['inference'][K] =>
    store.given(['inference', key]) ? config.inference[key] : board.inference[key];
  return {
    backend: pick('backend'),
    board: board.name,
    backendFrom: store.given(['inference', 'backend']) ? 'config' : 'board',
    options: { providers: pick('providers'), threads: pick('threads'), spinning: config.inference.spinning, precision: board.inference.precision, cacheDir: `${config.stateDir}/engines` },
  };
}

export class Daemon {
  #store: ConfigStore;
  #parts: DaemonParts;
  #log: Logger;
  #detector: LiveDetector | undefined;
  /** The start-up reference check of the model with this sha256. */
  #referenceCheck: { sha256: string; summary: ReferenceCheckSummary } | undefined;
  #updater: ModelUpdater | undefined;
  #reopener: ModelReopener | undefined;
  #link: LinkHandle | undefined;
  #cameras: CameraPipeline[] = [];
  #commands: Commands | undefined;
  #telemetryTimer: NodeJS.Timeout | undefined;
  #startedMono = performance.now();
  #stopping: Promise<void> | undefined;
  #board: BoardProfile | undefined;
  #metrics: MetricsExporter | undefined;
  #priority: InferencePriority | undefined;
  readonly #heapTrimmer = new HeapTrimmer(globalThis.gc);

  constructor(store: ConfigStore, parts: DaemonParts, log: Logger) {
    this.#store = store;
    this.#parts = parts;
    this.#log = log;
  }

  get link(): LinkHandle | undefined {
    return this.#link;
  }

  /** Starts everything; throws (after undoing what started) when a part cannot start. */
  async start(print: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<void> {
    const config = this.#store.current;
    const log = this.#log;
    try {
      const board = await loadBoard(config.board);
      this.#board = board;
      const inference = chooseInference(config, board, this.#store);
      log.info(`board ${board.name}; backend ${inference.backend} (${inference.options.providers.join(' > ')}, ${inference.options.threads || 'default'} threads)`);
      log.info(memoryAllocator() === 'jemalloc' ? 'memory allocator: jemalloc' : "memory allocator: the C library's malloc (MOEAD_MALLOC=jemalloc with `npm start`: flatter RSS, docs/bench.md)");

      const { store: models, recovery } = await ModelStore.open(config.stateDir, config.inference.model);
      const opened = await this.#openModel(models, inference, recovery);
      const detector = new LiveDetector(opened.detector);
      this.#detector = detector;
      const manifest = detector.manifest;
      log.info(`model ${manifest.name} ${manifest.version} from ${detector.current.bundle.dir} (threshold ${manifest.threshold.value})`);
      await this.#checkReferenceFrames(opened.detector, config.ota.referenceTolerance);
      this.#favorInference(detector, config.inference.housekeepingNice, inference.options.threads);

      // Thresholds from the config can only be checked against the model now; later changes
      // (and models an update brings) are checked the same way before use.
      const checkThresholds = (next: Config): string[] => thresholdProblems(next, detector.manifest.threshold.good_median);
      const problems = checkThresholds(config);
      if (problems.length) throw new Error(`invalid config ${this.#store.file ?? '(defaults)'}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
      this.#store.addCheck(checkThresholds);

      const seqs = await Promise.all(config.cameras.map((camera) => CameraSeq.open(config.stateDir, camera.name)));
      // Each camera's open event, kept so that one a crash leaves open is ended at the next start.
      const openEvents = await Promise.all(config.cameras.map((camera) => OpenEventFile.open(config.stateDir, camera.name)));
      for (const line of await dropOrphanedOpenEvents(config.stateDir, config.cameras.map((c) => c.name))) log.warn(line);
      // Before anything is saved: a kill during an earlier save left its temp copy behind.
      await this.#removeLeftoverTemps([...seqs.map((s) => s.file), ...openEvents.map((e) => e.file)]);

      const link = await this.#parts.createLink(config, () => ({ name: detector.manifest.name, version: detector.manifest.version }), log.child('mqtt'));
      this.#link = link;
      const otaLog = log.child('ota');
      // Discovery and the Sparkplug births name the model: the link announced this one as it connected.
      const modelReported = modelChangeAnnouncer(detector.manifest, () => {
        void link.link.modelChanged().catch((err: unknown) => otaLog.warn(`model change not announced: ${errorMessage(err)}`));
      });
      this.#updater = new ModelUpdater({
        store: models,
        config: () => this.#store.current.ota,
        live: detector,
        openDetector: (dir) => this.#parts.openDetector(dir, inference, log.child('inference')),
        thresholdProblems: (candidate) => thresholdProblems(this.#store.current, candidate.threshold.good_median),
        health: () => this.health(),
        report: (status) => {
          void link.link.publishOtaStatus(status).catch((err: unknown) => otaLog.warn(`status not published: ${errorMessage(err)}`));
          modelReported(status.running);
        },
        log: otaLog,
      });
      this.#cameras = config.cameras.map(
        (camera, i) =>
          new CameraPipeline({
            camera,
            source: this.#parts.createSource(camera, board, log.child(camera.name)),
            detector,
            link: link.link,
            seq: seqs[i] as CameraSeq,
            openEvent: openEvents[i],
            scoring: () => this.#store.current.scoring,
            stuckTimeoutS: config.inference.stuckTimeoutS,
            framesAhead: config.inference.framesAhead,
            log: log.child(camera.name),
          }),
      );
      this.#commands = registerCommands(link.link, { store: this.#store, cameras: this.#cameras, status: () => this.status(), models: this.#updater });
      await link.link.start();
      this.#updater.start(opened.recovery);
      const updater = this.#updater;
      this.#reopener = new ModelReopener({
        live: detector,
        open: (dir) => this.#parts.openDetector(dir, inference, log.child('inference')),
        probationOrRollback: () => updater.probationOrRollback(),
        log: log.child('inference'),
      });
      this.#reopener.start();
      for (const line of watchLines({ url: link.url(), embedded: link.embedded, root: link.root }, config.mqtt.base)) print(line);

      const prometheus = config.telemetry.prometheus;
      if (prometheus.enabled) {
        this.#metrics = new MetricsExporter(log.child('prometheus'));
        log.info(`Prometheus metrics on ${await this.#metrics.listen(prometheus.host, prometheus.port)}`);
      }

      for (const camera of this.#cameras) await camera.start();
      await link.link.announceOnline();
      log.info(`online: ${this.#cameras.length} camera(s) publishing under ${link.root}/`);

      this.#store.onChange((next, previous) => {
        if (next.logLevel !== previous.logLevel) log.setLevel(next.logLevel);
        if (next.telemetry.intervalS !== previous.telemetry.intervalS) this.#scheduleTelemetry();
      });
      this.#scheduleTelemetry();
      this.#heapTrimmer.start();
      if (!this.#heapTrimmer.available) log.debug('no full garbage collections on a heap budget: Node was started without --expose-gc (scripts/daemon-node.sh passes it)');
    } catch (err) {
      await this.stop().catch((stopErr: unknown) => log.error(`while undoing a failed start: ${errorMessage(stopErr)}`));
      throw err;
    }
  }

  /**
   * The model the store says is in force. An installed update that no longer opens (its
   * files damaged on disk) gives way to the configured model, so the device keeps scoring.
   */
  async #openModel(models: ModelStore, inference: InferenceChoice, recovery: StartupRecovery | undefined): Promise<{ detector: Detector; recovery: StartupRecovery | undefined }> {
    const log = this.#log;
    if (recovery !== undefined) log.warn(describeRecovery(recovery));
    try {
      return { detector: await this.#parts.openDetector(models.active, inference, log.child('inference')), recovery };
    } catch (err) {
      if (models.active === models.configured) throw err;
      const broken: StartupRecovery = { kind: 'install_broken', bundle: models.active, error: errorMessage(err) };
      log.error(describeRecovery(broken));
      await models.reset();
      return { detector: await this.#parts.openDetector(models.configured, inference, log.child('inference')), recovery: broken };
    }
  }

  /**
   * Deletes the temp files that saves of the config file and of `files` (state files under
   * stateDir) left when the daemon was killed during them, naming each in the log.
   */
  async #removeLeftoverTemps(files: readonly string[]): Promise<void> {
    const removed = [...(await this.#store.removeLeftoverTemps()), ...(await removeLeftoverTemps(...files))];
    for (const path of removed) this.#log.info(`${path}: deleted, the temp copy of a save that the last run did not finish (it ended during it)`);
  }

  /**
   * Scores the model's reference frames once at start, as an update's are before its switch:
   * a device whose arithmetic differs from the toolchain's host (another CPU family, a
   * TensorRT engine) shows here, before its scores and thresholds are trusted. It warns and
   * runs on, since refusing would take the camera off the line for scores that may be only a
   * little off.
   */
  async #checkReferenceFrames(detector: Detector, tolerance: number): Promise<void> {
    const log = this.#log;
    const { manifest } = detector.bundle;
    const count = manifest.reference_frames.length; // at least one: the manifest schema asks for it
    let check: ReferenceCheck;
    try {
      check = await measureReferenceFrames(detector, tolerance);
    } catch (err) {
      log.warn(`reference frames of ${manifest.name} ${manifest.version} could not be scored: ${errorMessage(err)}`);
      return;
    }
    const largest = Math.max(...check.results.map((r) => Math.abs(r.score - r.expected)));
    // In telemetry too: a fleet sees its devices' MQTT, not their logs.
    this.#referenceCheck = { sha256: manifest.model.sha256, summary: { frames: count, max_difference: largest, ok: check.problems.length === 0 } };
    if (check.problems.length === 0) {
      log.info(`reference frames: ${count} of ${count} score on this device as the manifest says (largest difference ${largest.toFixed(4)}, ${Math.round(check.worst * 100)} % of what ota.referenceTolerance allows)`);
      return;
    }
    const caps = detector.capabilities();
    const onCpu = caps.backend === 'onnxruntime' && caps.providers[0] === 'cpu' && manifest.model.precision === 'int8';
    const why = onCpu ? int8SaturationNote() : undefined;
    log.warn(`reference frames do not score on this device as the manifest says, so scores and the threshold may be off here: ${check.problems.join('; ')}${why ? `. Likely why: ${why}` : ''}`);
  }

  #favorInference(detector: LiveDetector, nice: number, threads: number): void {
    // The models an update holds open (a candidate, the one before) are spared as well.
    const modelThreads = () => {
      const live = detector.inferenceThreadIds();
      return live === undefined ? undefined : [...live, ...(this.#updater?.inferenceThreadIds() ?? [])];
    };
    this.#priority = favorInference({ nice, threads, inferenceThreadIds: modelThreads });
    const { off, lowered } = this.#priority;
    if (off) this.#log.debug(`all threads at normal priority: ${off}`);
    else this.#log.info(`inference first: ${lowered} other threads at nice ${nice} (inference.housekeepingNice)`);
  }

  status(): Record<string, unknown> {
    const detector = this.#detector;
    return {
      uptime_s: Math.round((performance.now() - this.#startedMono) / 1000),
      board: this.#board?.name ?? null,
      config_file: this.#store.file ?? null,
      model: detector ? { name: detector.manifest.name, version: detector.manifest.version, ...detector.capabilities() } : null,
      ota: this.#updater?.status() ?? null,
      cameras: Object.fromEntries(this.#cameras.map((c) => [c.name, c.status()])),
      scoring: this.#store.current.scoring,
    };
  }

  /**
   * Why the daemon is unhealthy, or undefined when it is not: a model whose inference worker
   * died (until the reopener has it running again), or one that stopped answering (a camera in
   * inference_stuck past inference.stuckTimeoutS). What does not come back by itself is cured
   * by a restart, which systemd's watchdog gives (src/util/sd-notify.ts).
   */
  health(): string | undefined {
    const failure = this.#detector?.failure();
    if (failure !== undefined) {
      const reopening = this.#reopener?.progress();
      return `the model in force can run no frame any more (${failure})${reopening === undefined ? '' : `; ${reopening}`}`;
    }
    const stuck = this.#cameras.filter((c) => c.status().state === 'inference_stuck').map((c) => c.name);
    return stuck.length > 0 ? `inference stuck for camera ${stuck.join(', ')} (inference.stuckTimeoutS)` : undefined;
  }

  /** One line on what the daemon serves, for service managers (systemd's STATUS). */
  summary(): string {
    const root = this.#link?.root;
    return `${this.#cameras.length} camera(s) publishing${root === undefined ? '' : ` under ${root}/`}`;
  }

  #scheduleTelemetry(): void {
    clearInterval(this.#telemetryTimer);
    const link = this.#link;
    const detector = this.#detector;
    const board = this.#board;
    if (!link || !detector || !board) return;
    const cpu = new CpuMeter();
    const sources = {
      startedMono: this.#startedMono,
      stateDir: this.#store.current.stateDir,
      board,
      model: () => {
        const { name, version, model } = detector.manifest;
        // The check ran on the model in force at start; one an update brought was checked before its switch.
        const check = this.#referenceCheck?.sha256 === model.sha256 ? { reference_check: this.#referenceCheck.summary } : {};
        return { name, version, sha256: model.sha256, ...check };
      },
      capabilities: () => detector.capabilities(),
      cameras: this.#cameras,
      ...(link.stats ? { linkStats: link.stats } : {}),
    };
    this.#telemetryTimer = setInterval(() => {
      void buildTelemetry(sources, cpu)
        .then((payload) => {
          try {
            this.#metrics?.update(payload);
          } catch (err) {
            this.#log.warn(`Prometheus metrics not updated: ${errorMessage(err)}`);
          }
          return link.link.publishTelemetry(payload);
        })
        .catch((err: unknown) => this.#log.warn(`telemetry not published: ${errorMessage(err)}`));
    }, this.#store.current.telemetry.intervalS * 1000);
  }

  /** Idempotent: a second call waits for the first. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const log = this.#log;
    clearInterval(this.#telemetryTimer);
    this.#heapTrimmer.stop();
    this.#priority?.stop();
    this.#store.unwatch();
    // Commands first: one served later would act on parts already stopped. A command gets as
    // long as its requester was promised an answer in.
    const waitMs = this.#store.current.mqtt.commands.timeoutMs;
    const running = (await this.#commands?.close(waitMs)) ?? 0;
    if (running > 0) log.error(`stopping with ${running} command(s) still running after ${waitMs} ms (mqtt.commands.timeoutMs)`);
    // Before anything closes the model: a reopen finishing later would leave its worker running.
    await this.#reopener?.stop();
    await this.#updater?.stop().catch((err: unknown) => log.error(`stopping the model updater: ${errorMessage(err)}`));
    const cameras = await Promise.all(
      this.#cameras.map((c) =>
        c.stop().catch((err: unknown) => {
          log.error(`stopping camera ${c.name}: ${errorMessage(err)}`);
          return { abandoned: false };
        }),
      ),
    );
    // A model that hung at the end is no model to resume a probation with.
    if (cameras.some((c) => c.abandoned)) await this.#updater?.stoppedWithModelHung().catch((err: unknown) => log.error(`probation state not saved: ${errorMessage(err)}`));
    if (this.#link) await this.#link.link.stop().catch((err: unknown) => log.error(`stopping the MQTT link: ${errorMessage(err)}`));
    await this.#metrics?.close();
    if (this.#detector) await this.#detector.close().catch((err: unknown) => log.error(`closing the model: ${errorMessage(err)}`));
    log.info('stopped');
  }
}
