/** Camera entries under `cameras:` in the config. The capture folder owns this schema. */
import { z } from 'zod';
import { osText } from '../util/os-text.js';
import { gstTokens } from './pipeline.js';

const cameraName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'expected [a-zA-Z0-9_-], used in MQTT topics');

/** Fields every camera has, whatever its source. */
const common = {
  name: cameraName,
  /** A disabled camera is configured but never started; its status says `disabled`. */
  enabled: z.boolean().default(true),
};

export const FolderCameraSchema = z.strictObject({
  type: z.literal('folder'),
  ...common,
  /** Folder of JPEG/PNG images, replayed in name order. */
  path: osText,
  fps: z.number().positive().max(120).default(2),
  loop: z.boolean().default(true),
  /**
   * Largest image file read: each is read whole before the decoder sees it, so a stray video
   * or disk image in the folder must not be. 128 MiB holds an uncompressed 8K RGB PNG.
   */
  maxFileBytes: z.number().int().min(1024).max(2 ** 31 - 1).default(128 * 2 ** 20),
});

/** Region of interest, in pixels of the frame the pipeline delivers (before rotation). */
export const RoiSchema = z.strictObject({
  x: z.number().int().min(0),
  y: z.number().int().min(0),
  width: z.number().int().min(1),
  height: z.number().int().min(1),
});
export type Roi = z.infer<typeof RoiSchema>;

export const RotationSchema = z.union([z.literal(0), z.literal(90), z.literal(180), z.literal(270)]);
export type Rotation = z.infer<typeof RotationSchema>;

const INITIAL_RECONNECT_MS = 1000;

export const ReconnectSchema = z
  .strictObject({
    /** Delay before the first restart after a failure; doubles on each failure in a row. */
    initialMs: z.number().int().min(10).max(600_000).default(INITIAL_RECONNECT_MS),
    maxMs: z.number().int().min(10).max(3_600_000).default(30_000),
    /** Each delay is spread by ±jitter (fraction) so many cameras do not reconnect in lockstep. */
    jitter: z.number().min(0).max(1).default(0.2),
  })
  .superRefine((r, ctx) => {
    // backoffDelay caps every delay at maxMs: a larger initialMs would be silently ignored.
    if (r.initialMs > r.maxMs) {
      ctx.addIssue({ code: 'custom', path: ['initialMs'], message: `expected at most reconnect.maxMs (${r.maxMs}), which caps every delay, the first one too (initialMs is ${INITIAL_RECONNECT_MS} when not set)` });
    }
  });

/** A description gst-launch-1.0 cannot split into the same tokens is refused here, not retried forever at run time. */
function splitsIntoTokens(description: string, ctx: z.RefinementCtx): void {
  try {
    gstTokens(description);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) });
  }
}

/**
 * Fields of every source that runs a child process (ffmpeg or gst-launch-1.0) writing raw
 * rgb24 frames of width×height to a pipe.
 */
const rawSource = {
  ...common,
  /** Size of the frames the pipeline delivers (it scales to this size). */
  width: z.number().int().min(16).max(7680).default(640),
  height: z.number().int().min(16).max(4320).default(480),
  /** Frames per second handed on; extra frames are skipped (and counted). */
  fps: z.number().positive().max(240).default(5),
  roi: RoiSchema.optional(),
  /** Clockwise rotation applied after the crop. */
  rotate: RotationSchema.default(0),
  /** No frame for this long restarts the pipeline (Frigate uses 20 s). */
  stallTimeoutS: z.number().positive().max(3600).default(20),
  reconnect: ReconnectSchema.prefault({}),
  /** Overrides the board profile's choice of launcher for this camera. */
  launcher: z.enum(['ffmpeg', 'gstreamer']).optional(),
  /**
   * Complete gst-launch-1.0 description to run instead of the generated one, for unusual
   * setups. It must deliver video/x-raw,format=RGB frames of width×height; `! fdsink fd=1`
   * is appended when it does not end in an fdsink.
   */
  pipeline: osText.superRefine(splitsIntoTokens).optional(),
};

export const FileCameraSchema = z.strictObject({
  type: z.literal('file'),
  ...rawSource,
  /** Video file, replayed at its own rate (then capped at fps). */
  path: osText,
  loop: z.boolean().default(true),
});

export const V4l2CameraSchema = z.strictObject({
  type: z.literal('v4l2'),
  ...rawSource,
  device: z.string().regex(/^\/dev\/[A-Za-z0-9_/.-]+$/, 'expected a device path such as /dev/video0').default('/dev/video0'),
  /** What the camera sends: MJPEG (decoded here) or raw YUYV. */
  input: z.enum(['mjpeg', 'yuyv']).default('mjpeg'),
  /** Capture size asked of the camera; defaults to the output size. */
  captureWidth: z.number().int().min(16).max(7680).optional(),
  captureHeight: z.number().int().min(16).max(4320).optional(),
  /** Frame rate asked of the camera; defaults to fps. */
  captureFps: z.number().int().positive().max(240).optional(),
});

export const CsiCameraSchema = z.strictObject({
  type: z.literal('csi'),
  ...rawSource,
  /** nvarguscamerasrc exists only in GStreamer. */
  launcher: z.literal('gstreamer').optional(),
  sensorId: z.number().int().min(0).max(15).default(0),
  /** nvarguscamerasrc sensor-mode; absent lets Argus pick from the capture size. */
  sensorMode: z.number().int().min(0).max(31).optional(),
  captureWidth: z.number().int().min(16).max(7680).default(1920),
  captureHeight: z.number().int().min(16).max(4320).default(1080),
  captureFps: z.number().int().positive().max(240).default(30),
  /** nvvidconv flip-method: 0 none, 1 ccw 90, 2 180, 3 cw 90, 4 horizontal, 5 upper-right diagonal, 6 vertical, 7 upper-left diagonal. */
  flip: z.number().int().min(0).max(7).default(0),
});

const credentials = {
  /** Credentials go into the connection, never into logs or status messages. */
  username: osText.optional(),
  password: osText.optional(),
  /** Names of environment variables holding the credentials (take precedence). */
  usernameEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional(),
  passwordEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional(),
};

export const RtspCameraSchema = z.strictObject({
  type: z.literal('rtsp'),
  ...rawSource,
  /** Passed to the child as one argument (never through a shell), so any character is safe here. */
  url: z.string().regex(/^rtsps?:\/\/[^\x00-\x1f\x7f]+$/, 'expected an rtsp:// or rtsps:// URL without control characters'),
  transport: z.enum(['tcp', 'udp']).default('tcp'),
  /** Video codec of the stream (picks the board's hardware decoder under GStreamer). */
  codec: z.enum(['h264', 'h265']).default('h264'),
  ...credentials,
});

export const HttpCameraSchema = z.strictObject({
  type: z.literal('http'),
  ...rawSource,
  /** MJPEG-over-HTTP stream (multipart/x-mixed-replace); under ffmpeg, any stream ffmpeg can read. */
  url: z.string().regex(/^https?:\/\/[^\x00-\x1f\x7f]+$/, 'expected an http:// or https:// URL without control characters'),
  ...credentials,
});

/** The crop must lie inside the frame the pipeline delivers. */
function roiInsideFrame(c: { roi?: Roi | undefined; width: number; height: number }, ctx: z.RefinementCtx): void {
  if (c.roi && (c.roi.x + c.roi.width > c.width || c.roi.y + c.roi.height > c.height)) {
    ctx.addIssue({ code: 'custom', path: ['roi'], message: `roi ${c.roi.width}x${c.roi.height}+${c.roi.x}+${c.roi.y} does not fit in the ${c.width}x${c.height} frame` });
  }
}

export const CameraConfigSchema = z.discriminatedUnion('type', [
  FolderCameraSchema,
  FileCameraSchema.superRefine(roiInsideFrame),
  V4l2CameraSchema.superRefine(roiInsideFrame),
  CsiCameraSchema.superRefine(roiInsideFrame),
  RtspCameraSchema.superRefine(roiInsideFrame),
  HttpCameraSchema.superRefine(roiInsideFrame),
]);
export type CameraConfig = z.infer<typeof CameraConfigSchema>;
export type FolderCameraConfig = z.infer<typeof FolderCameraSchema>;
export type RawCameraConfig = Exclude<CameraConfig, FolderCameraConfig>;
export type RtspCameraConfig = z.infer<typeof RtspCameraSchema>;
export type HttpCameraConfig = z.infer<typeof HttpCameraSchema>;
