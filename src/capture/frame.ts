/**
 * Frames and frame sources. Every source (image folder, video file, V4L2, CSI, RTSP)
 * delivers whole frames through this interface; the daemon does not know which it has.
 */

/** Raw pixel layouts a child process can write to a pipe, plus still-encoded images. */
export type PixelFormat = 'rgb24' | 'bgr24' | 'rgba' | 'gray' | 'yuyv' | 'nv12' | 'encoded';

export interface Frame {
  camera: string;
  /** Capture counter of this source, from 0; gaps mean the source dropped frames. */
  index: number;
  /** Wall-clock time the frame was captured (ms since the epoch). */
  capturedAt: number;
  /** Monotonic capture time (performance.now()), for latency figures. */
  capturedMono: number;
  format: PixelFormat;
  /** Pixel size; for `encoded` frames, 0 until decoded. */
  width: number;
  height: number;
  /** Whole frame bytes: exactly width*height*bpp for raw formats. */
  data: Buffer;
  /** Where the frame came from (file name for folders), for logs and the `score` CLI. */
  origin?: string;
  /**
   * Hands `data` back to the source to be filled with a later frame. Only the frame's last
   * holder may call it, once nothing will read `data` again (the camera pipeline does, see
   * src/daemon/camera-pipeline.ts); a frame never released is simply garbage collected.
   * Absent where the source has nothing to reuse.
   */
  release?: () => void;
}

export type SourceState = 'starting' | 'streaming' | 'no_frames' | 'decode_error' | 'disabled' | 'stopped';

export interface SourceStatus {
  camera: string;
  state: SourceState;
  message?: string;
}

export interface FrameSourceStats {
  frames: number;
  /** Frames the source itself discarded (truncated, undecodable, over the fps cap). */
  dropped: number;
  restarts: number;
  stalls: number;
  /** Restarts and stalls within the last hour. */
  restartsLastHour: number;
  stallsLastHour: number;
}

export interface FrameSource {
  readonly camera: string;
  /** Starts delivering frames; resolves once the source has been started (not first frame). */
  start(onFrame: (frame: Frame) => void, onStatus: (status: SourceStatus) => void): Promise<void>;
  stop(): Promise<void>;
  stats(): FrameSourceStats;
}
