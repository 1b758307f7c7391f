/**
 * Replays a folder of JPEG/PNG images in name order at a fixed rate, as `encoded` frames:
 * decoding (and rejecting corrupt images) is the detector's job. The folder is listed again
 * at the start of every pass, so images added or removed while running are picked up; a
 * file that vanished or cannot be read is counted and skipped.
 */
import { constants } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { FolderCameraConfig } from './config.js';
import type { Frame, FrameSource, SourceStatus } from './frame.js';
import { errorMessage } from '../util/log.js';
import { SourceReporter, type CaptureLog, type CaptureStats } from './reporter.js';

const IMAGE = /\.(jpe?g|png)$/i;

export async function listImages(folder: string): Promise<string[]> {
  const names = await readdir(folder);
  return names.filter((n) => IMAGE.test(n)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

/**
 * Reads one image file. Opened non-blocking and checked to be a regular file first: a FIFO
 * named like an image would block the open until a writer came (the camera stalled, a libuv
 * pool thread held), and a device such as /dev/zero would be read until memory gave out.
 */
async function readImage(file: string, maxBytes: number): Promise<Buffer> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error('not a regular file');
    if (stat.size > maxBytes) throw new Error(`${stat.size} bytes, over maxFileBytes (${maxBytes})`);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

export class FolderSource implements FrameSource {
  readonly camera: string;
  private readonly reporter: SourceReporter;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private files: string[] = [];
  private position = 0;
  private passes = 0;
  private deliveredThisPass = false;
  private nextDue = 0;
  private onFrame: (frame: Frame) => void = () => {};

  constructor(
    private readonly config: FolderCameraConfig,
    log: CaptureLog,
  ) {
    this.camera = config.name;
    this.reporter = new SourceReporter(config.name, log);
  }

  async start(onFrame: (frame: Frame) => void, onStatus: (status: SourceStatus) => void): Promise<void> {
    if (this.running) return;
    this.onFrame = onFrame;
    if (!this.reporter.begin(onStatus, this.config.enabled)) return;
    this.running = true;
    this.nextDue = performance.now();
    this.timer = setTimeout(() => void this.tick(), 0);
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.running) return; // disabled, finished, or never started: keep that status
    this.running = false;
    this.reporter.status('stopped');
  }

  stats(): CaptureStats {
    return this.reporter.snapshot();
  }

  private async tick(): Promise<void> {
    if (!this.running) return;
    await this.deliverOne();
    if (!this.running) return;
    const now = performance.now();
    // Fixed-rate schedule; after a slow read, start again from now instead of bursting to catch up.
    this.nextDue = Math.max(this.nextDue + 1000 / this.config.fps, now);
    this.timer = setTimeout(() => void this.tick(), this.nextDue - now);
  }

  private async deliverOne(): Promise<void> {
    if (this.position >= this.files.length) {
      if (this.passes > 0 && !this.deliveredThisPass && this.files.length > 0) {
        this.reporter.status('no_frames', `no readable image in ${this.config.path}`);
      }
      if (this.passes > 0 && this.files.length > 0 && !this.config.loop) {
        this.running = false;
        this.reporter.status('stopped', `end of folder ${this.config.path} (loop: false)`);
        return;
      }
      if (!(await this.relist())) return;
    }
    while (this.running && this.position < this.files.length) {
      const name = this.files[this.position++]!;
      const file = join(this.config.path, name);
      let data: Buffer;
      try {
        data = await readImage(file, this.config.maxFileBytes);
      } catch (err) {
        this.reporter.drop('unreadable', `${file}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
        continue;
      }
      if (!this.running) return;
      if (data.length === 0) {
        this.reporter.drop('unreadable', `${file}: empty file`);
        continue;
      }
      const frame: Frame = {
        camera: this.camera,
        index: this.reporter.frame(),
        capturedAt: Date.now(),
        capturedMono: performance.now(),
        format: 'encoded',
        width: 0,
        height: 0,
        data,
        origin: file,
      };
      this.deliveredThisPass = true;
      this.reporter.status('streaming');
      this.onFrame(frame);
      return;
    }
  }

  /** Lists the folder for a new pass; false (with a status saying why) when there is nothing to play. */
  private async relist(): Promise<boolean> {
    this.position = 0;
    this.deliveredThisPass = false;
    try {
      this.files = await listImages(this.config.path);
    } catch (err) {
      this.files = [];
      const message = `cannot list ${this.config.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
      this.reporter.error(message);
      this.reporter.status('no_frames', message);
      return false;
    }
    if (this.files.length === 0) {
      this.reporter.status('no_frames', `no JPEG/PNG images in ${this.config.path}`);
      return false;
    }
    this.passes++;
    return true;
  }
}
