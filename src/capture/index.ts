/** Entry point of the capture concern: one FrameSource per configured camera. */
import type { BoardCapture } from './board.js';
import { BoardCaptureSchema } from './board.js';
import type { CameraConfig } from './config.js';
import type { FrameSource } from './frame.js';
import { FolderSource } from './folder-source.js';
import { ProcessSource } from './process-source.js';
import type { Binaries } from './pipeline.js';
import { silentLog, type CaptureLog } from './reporter.js';

export interface FrameSourceDeps {
  /** The board profile's `capture:` section (defaults: ffmpeg, software decode). */
  board?: BoardCapture;
  log?: CaptureLog;
  /** Environment for credentials (`passwordEnv`) and for the child process; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Paths of the launcher binaries (and mkfifo), when not on PATH. */
  binaries?: Binaries;
}

export function createFrameSource(camera: CameraConfig, deps: FrameSourceDeps = {}): FrameSource {
  const log = deps.log ?? silentLog;
  const board = deps.board ?? BoardCaptureSchema.parse({});
  if (camera.type === 'folder') return new FolderSource(camera, log);
  return new ProcessSource(camera, { board, log, env: deps.env ?? process.env, binaries: deps.binaries ?? {} });
}

export type { CaptureStats, CaptureLog, CaptureLogLevel, DropReason, RestartReason } from './reporter.js';
export { CameraConfigSchema, type CameraConfig } from './config.js';
export { BoardCaptureSchema, type BoardCapture } from './board.js';
