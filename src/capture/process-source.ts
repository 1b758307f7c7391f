/**
 * A camera read through a child process (ffmpeg or gst-launch-1.0) that writes raw rgb24
 * frames to a pipe. It survives the camera going away: the child is restarted with
 * exponential backoff and jitter when it exits or fails, and a watchdog restarts it when no
 * frame has come for `stallTimeoutS`. Every restart, stall and drop is counted with its
 * reason; the status callback says streaming / no_frames / decode_error / disabled.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync, unlinkSync } from 'node:fs';
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BoardCapture } from './board.js';
import { backoffDelay } from './backoff.js';
import type { RawCameraConfig } from './config.js';
import type { Frame, FrameSource, SourceStatus } from './frame.js';
import { FrameAssembler } from './frame-assembler.js';
import { buildChildCommand, RGB_BYTES_PER_PIXEL, type Binaries, type ChildCommand } from './pipeline.js';
import { redact } from '../util/redact.js';
import { SourceReporter, type CaptureLog, type CaptureStats, type RestartReason } from './reporter.js';
import { crop, rotate, type RawImage } from './transform.js';
import { errorMessage } from '../util/log.js';

/** How long a child gets to exit after SIGTERM before SIGKILL. */
const KILL_GRACE_MS = 2000;
/** Frames the fps cap lets through back to back. */
const FPS_BURST = 2;
/** Bytes of the child's stderr kept for the status message. */
const STDERR_KEEP = 4096;
/** stderr lines that mean the stream arrives but cannot be decoded (ffmpeg and GStreamer wording). */
const DECODE_ERROR = /invalid data found|error while decoding|decode_slice|corrupt|could not demultiplex|not-negotiated|no decoder|missing plug-?in|could not determine type/i;

interface Run {
  child: ChildProcess;
  assembler: FrameAssembler;
  stderr: string;
  startedMono: number;
  lastFrameMono: number;
  frames: number;
  /** Set when the watchdog (or stop) killed the child, so its exit is not counted twice. */
  killedFor?: 'stall' | 'stop';
  finished: boolean;
  /** Resolves once the run has finished: its child closed and its last frame read. */
  ended: Promise<void>;
  markEnded: () => void;
}

export interface ProcessSourceOptions {
  board: BoardCapture;
  log: CaptureLog;
  env: NodeJS.ProcessEnv;
  binaries: Binaries;
}

export class ProcessSource implements FrameSource {
  readonly camera: string;
  private readonly reporter: SourceReporter;
  private running = false;
  private run: Run | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private failuresInRow = 0;
  private tokens = FPS_BURST;
  private tokensAt = 0;
  private secrets: string[] = [];
  private pipeFallbackLogged = false;
  private onFrame: (frame: Frame) => void = () => {};
  private readonly interval: number;

  constructor(
    private readonly config: RawCameraConfig,
    private readonly options: ProcessSourceOptions,
  ) {
    this.camera = config.name;
    this.reporter = new SourceReporter(config.name, options.log);
    this.interval = 1000 / config.fps;
    if (config.roi) {
      const r = config.roi;
      if (r.x + r.width > config.width || r.y + r.height > config.height) {
        throw new Error(`cameras.${config.name}.roi: ${r.width}x${r.height}+${r.x}+${r.y} does not fit in the ${config.width}x${config.height} frame`);
      }
    }
  }

  async start(onFrame: (frame: Frame) => void, onStatus: (status: SourceStatus) => void): Promise<void> {
    if (this.running) return;
    this.onFrame = onFrame;
    if (!this.reporter.begin(onStatus, this.config.enabled)) return;
    this.running = true;
    const period = Math.min(1000, (this.config.stallTimeoutS * 1000) / 4);
    this.watchdog = setInterval(() => this.checkStall(), period);
    this.launch();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.watchdog = this.restartTimer = undefined;
    const run = this.run;
    if (run && !run.finished) {
      run.killedFor = 'stop';
      killRun(run);
      // SIGKILL follows after the grace period; the timer only guards against an end that never comes.
      let giveUp: NodeJS.Timeout | undefined;
      await Promise.race([run.ended, new Promise<void>((resolve) => (giveUp = setTimeout(resolve, KILL_GRACE_MS + 1000)))]);
      clearTimeout(giveUp);
    }
    this.run = undefined;
    this.reporter.status('stopped');
  }

  stats(): CaptureStats {
    return this.reporter.snapshot();
  }

  /**
   * Every start of a child goes through here. It runs from timers and child events, where a
   * throw would end the daemon and every camera with it: whatever spawnChild did not foresee
   * is reported and retried like any other failure to start.
   */
  private launch(): void {
    this.restartTimer = undefined;
    try {
      this.spawnChild();
    } catch (err) {
      this.fail('spawn_error', redact(errorMessage(err), this.secrets), 'no_frames');
    }
  }

  private spawnChild(): void {
    if (!this.running) return;
    let cmd: ChildCommand;
    try {
      cmd = buildChildCommand(this.config, this.options.board, this.options.env, this.options.binaries);
    } catch (err) {
      // A missing credential variable: nothing will work until the environment changes, but keep trying.
      this.fail('spawn_error', errorMessage(err), 'no_frames');
      return;
    }
    this.secrets = cmd.secrets;
    this.options.log('info', `camera ${this.camera}: starting ${cmd.command} ${redact(cmd.args.join(' '), this.secrets)}`);
    const pipe = this.openPipe();
    const child = startChild(cmd, pipe, this.options.env);
    if (typeof child === 'string') {
      this.fail('spawn_error', redact(child, this.secrets), 'no_frames');
      return;
    }
    const now = performance.now();
    let markEnded = (): void => {};
    const ended = new Promise<void>((resolve) => (markEnded = resolve));
    const run: Run = {
      child,
      assembler: new FrameAssembler(
        this.config.width * this.config.height * RGB_BYTES_PER_PIXEL,
        (data, release) => this.onWholeFrame(run, data, release),
        { rows: this.config.height, stride: cmd.rowStride },
      ),
      stderr: '',
      startedMono: now,
      lastFrameMono: now,
      frames: 0,
      finished: false,
      ended,
      markEnded,
    };
    this.run = run;
    ownGroup(run);
    // The child's end is handled once its last frame has been read: a FIFO, unlike the child's
    // own stdout pipe, may still hold frames when 'close' fires.
    let framesRead: Promise<void> = Promise.resolve();
    if (pipe) framesRead = readFramesInPlace(pipe.readFd, run.assembler);
    else child.stdout?.on('data', (chunk: Buffer) => run.assembler.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => {
      run.stderr = (run.stderr + chunk.toString('utf8')).slice(-STDERR_KEEP);
    });
    child.once('error', (err) => void framesRead.then(() => this.onChildEnd(run, cmd, null, null, err)));
    child.once('close', (code, signal) => void framesRead.then(() => this.onChildEnd(run, cmd, code, signal)));
  }

  /** A FIFO for the child's frames, or undefined to read them from its stdout (said once). */
  private openPipe(): FramePipe | undefined {
    try {
      return openFramePipe(this.options.binaries.mkfifo ?? 'mkfifo');
    } catch (err) {
      if (!this.pipeFallbackLogged) this.options.log('warn', `camera ${this.camera}: reading frames from a plain pipe (more garbage to collect per frame): ${errorMessage(err)}`);
      this.pipeFallbackLogged = true;
      return undefined;
    }
  }

  private onWholeFrame(run: Run, data: Buffer, release: () => void): void {
    const capturedMono = performance.now();
    const capturedAt = Date.now();
    run.lastFrameMono = capturedMono;
    run.frames++;
    if (this.run !== run || !this.running) return;
    if (!this.takeToken(capturedMono)) {
      release();
      this.reporter.drop('fps_cap');
      return;
    }
    let img: RawImage = { data, width: this.config.width, height: this.config.height };
    if (this.config.roi) img = crop(img, this.config.roi, RGB_BYTES_PER_PIXEL);
    img = rotate(img, this.config.rotate, RGB_BYTES_PER_PIXEL);
    // A crop or a rotation copied the pixels: the pipe's buffer is free at once.
    if (img.data !== data) release();
    this.reporter.status('streaming');
    this.onFrame({
      camera: this.camera,
      index: this.reporter.frame(),
      capturedAt,
      capturedMono,
      format: 'rgb24',
      width: img.width,
      height: img.height,
      data: img.data,
      ...(img.data === data ? { release } : {}),
    });
  }

  /**
   * fps cap as a token bucket: tokens refill at fps up to FPS_BURST, a frame needs one. The
   * long-run rate never exceeds fps, while two frames a pipe delivers together (decoder
   * flushes, network bursts) both pass when the source is not faster than the cap.
   */
  private takeToken(now: number): boolean {
    this.tokens = Math.min(FPS_BURST, this.tokens + (now - this.tokensAt) / this.interval);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private onChildEnd(run: Run, cmd: ChildCommand, code: number | null, signal: NodeJS.Signals | null, error?: Error): void {
    if (run.finished) return;
    run.finished = true;
    run.markEnded();
    const leftover = run.assembler.end();
    if (leftover > 0) this.reporter.drop('truncated', `${leftover} of ${run.assembler.streamBytes} bytes when the pipe closed`);
    if (this.run !== run || run.killedFor === 'stop' || !this.running) return;
    if (run.killedFor === 'stall') {
      this.scheduleRestart();
      return;
    }
    const lastLine = redact(run.stderr.trim().split('\n').filter(Boolean).at(-1) ?? '', this.secrets);
    if (error) {
      const why = (error as NodeJS.ErrnoException).code === 'ENOENT' ? `${cmd.command} not found (install it or set its path)` : error.message;
      this.fail('spawn_error', redact(why, this.secrets), 'no_frames');
      return;
    }
    if (code === 0 && cmd.replayOnCleanExit && run.frames > 0) {
      this.launch(); // end of a looped file under gst-launch: replay at once, not a failure
      return;
    }
    const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
    const state = DECODE_ERROR.test(run.stderr) ? 'decode_error' : 'no_frames';
    if (code === 0 && this.config.type === 'file' && !this.config.loop) {
      this.running = false;
      if (this.watchdog) clearInterval(this.watchdog);
      this.reporter.status('stopped', `end of ${this.config.path} (loop: false)`);
      return;
    }
    this.fail('exit', `${cmd.launcher} ${how}${lastLine ? `: ${lastLine}` : ''}`, state);
  }

  private fail(reason: RestartReason, detail: string, state: 'no_frames' | 'decode_error'): void {
    this.reporter.restart(reason, detail);
    this.reporter.status(state, detail);
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (!this.running || this.restartTimer) return;
    const run = this.run;
    // A run that streamed for longer than the longest delay was healthy: start the backoff afresh.
    if (run && run.frames > 0 && run.lastFrameMono - run.startedMono > this.config.reconnect.maxMs) this.failuresInRow = 0;
    this.failuresInRow++;
    const delay = backoffDelay(this.failuresInRow, this.config.reconnect);
    this.restartTimer = setTimeout(() => this.launch(), delay);
  }

  private checkStall(): void {
    const run = this.run;
    if (!run || run.finished || run.killedFor) return;
    const silentMs = performance.now() - run.lastFrameMono;
    if (silentMs < this.config.stallTimeoutS * 1000) return;
    run.killedFor = 'stall';
    const detail = `no frame for ${(silentMs / 1000).toFixed(1)} s`;
    this.reporter.restart('stall', detail);
    this.reporter.status('no_frames', detail);
    killRun(run);
  }
}

interface FramePipe {
  readFd: number;
  writeFd: number;
}

let framePipes = 0;

/**
 * A FIFO for the child's stdout. Node reads a child's own stdout pipe into a fresh 64 KiB
 * buffer per read, and at 720p 30 fps those 80 MB a second of short-lived buffers made V8
 * start a full collection about twice a second; a FIFO opened here can be read by a socket
 * with `onread`, straight into the frame being filled (readFramesInPlace). The name is
 * removed as soon as both ends are open.
 */
function openFramePipe(mkfifo: string): FramePipe {
  const path = join(tmpdir(), `moead-frames-${process.pid}-${++framePipes}`);
  const made = spawnSync(mkfifo, ['-m', '600', path], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`mkfifo ${path} failed: ${made.error?.message ?? made.stderr.trim()}`);
  try {
    const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      // Blocking for the child, and it does not wait: the read end is open already.
      return { readFd, writeFd: openSync(path, constants.O_WRONLY) };
    } catch (err) {
      closeSync(readFd);
      throw err;
    }
  } finally {
    unlinkSync(path);
  }
}

/** Reads the FIFO into the assembler's frame in place; resolves once the stream has ended. */
function readFramesInPlace(fd: number, assembler: FrameAssembler): Promise<void> {
  // Node's Socket constructor takes `onread` (its typings declare it only for net.connect).
  const options: SocketConstructorOpts & { onread: OnReadOpts } = {
    fd,
    readable: true,
    writable: false,
    onread: {
      buffer: () => assembler.target(),
      callback: (bytes: number) => {
        assembler.advance(bytes);
        return true; // keep reading
      },
    },
  };
  const socket = new Socket(options);
  // A read error ends the stream like an end of file; the child's exit says what happened.
  socket.on('error', () => socket.destroy());
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/**
 * Spawns the child as the leader of a process group of its own (see killRun), or says why
 * it could not. spawn throws some errors; when no file descriptors are left for the pipes
 * (EMFILE, ENFILE) it returns a child without them that only ever emits 'error'.
 */
function startChild(cmd: ChildCommand, pipe: FramePipe | undefined, env: NodeJS.ProcessEnv): ChildProcess | string {
  let child: ChildProcess;
  try {
    child = spawn(cmd.command, cmd.args, { stdio: ['ignore', pipe?.writeFd ?? 'pipe', 'pipe'], env, detached: true });
  } catch (err) {
    if (pipe) closeSync(pipe.readFd);
    return `${cmd.command} could not be started: ${errorMessage(err)}`;
  } finally {
    // The child has its own copy; ours would keep the reader from ever seeing the end.
    if (pipe) closeSync(pipe.writeFd);
  }
  if (child.stderr && (pipe || child.stdout)) return child;
  // Reported here, by the caller; unheard, the 'error' still to come would be thrown.
  child.once('error', () => {});
  if (pipe) closeSync(pipe.readFd);
  return `${cmd.command} could not be started: no pipe to read it through (out of file descriptors?)`;
}

/** Process groups of runs not yet ended, killed should the daemon exit without stopping its cameras. */
const liveGroups = new Set<number>();

/** Children in groups of their own miss the terminal's Ctrl-C and any signal sent to the daemon's group. */
function ownGroup(run: Run): void {
  const group = run.child.pid;
  if (group === undefined) return;
  if (liveGroups.size === 0) process.once('exit', killLiveGroups);
  liveGroups.add(group);
  void run.ended.then(() => {
    liveGroups.delete(group);
    if (liveGroups.size === 0) process.off('exit', killLiveGroups);
  });
}

function killLiveGroups(): void {
  for (const group of liveGroups) signalGroup(group, 'SIGKILL');
}

/**
 * Ends the child and everything it started: a launcher behind a wrapper script that did not
 * `exec` runs as a grandchild holding the pipes, and the run does not end while it lives,
 * however dead the child itself is. SIGKILL follows unless the run ended within the grace period.
 */
function killRun(run: Run): void {
  const group = run.child.pid;
  if (group === undefined) return;
  signalGroup(group, 'SIGTERM');
  signalGroup(group, 'SIGCONT'); // a stopped (SIGSTOP) child acts on SIGTERM only once it runs again
  const force = setTimeout(() => signalGroup(group, 'SIGKILL'), KILL_GRACE_MS);
  force.unref();
  void run.ended.then(() => clearTimeout(force));
}

function signalGroup(group: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-group, signal);
  } catch {
    // ESRCH: nothing of the group is left
  }
}
