/**
 * The `capture:` part of a board profile (boards/<board>.json): which launcher runs the
 * camera pipelines and which GStreamer elements decode and convert on this board, so a
 * Jetson uses NVDEC/VIC (nvv4l2decoder, nvvidconv) and other boards decode in software.
 */
import { z } from 'zod';
import { osText } from '../util/os-text.js';

/** A fragment of a gst-launch description, e.g. `nvv4l2decoder mjpeg=1` or `videoconvert ! videoscale`. */
const gstFragment = z.string().min(1).regex(/^[^"\\\0]*$/, 'expected gst-launch elements without quotes, backslashes or NUL');

export const BoardCaptureSchema = z.strictObject({
  /** Launcher for cameras that do not choose one. ffmpeg is everywhere; Jetson's ffmpeg has no NVDEC, so Jetson profiles pick gstreamer. */
  launcher: z.enum(['ffmpeg', 'gstreamer']).default('ffmpeg'),
  gstreamer: z
    .strictObject({
      /** Parsers after rtp<codec>depay (they hand decoders the byte-stream NVDEC needs). */
      h264Parser: gstFragment.default('h264parse'),
      h265Parser: gstFragment.default('h265parse'),
      h264Decoder: gstFragment.default('avdec_h264'),
      h265Decoder: gstFragment.default('avdec_h265'),
      mjpegDecoder: gstFragment.default('jpegdec'),
      /** Scales decoded frames to the output size; followed by `<scaleCaps>,width=W,height=H`. */
      scaler: gstFragment.default('videoconvert ! videoscale'),
      /** Caps after the scaler (Jetson: video/x-raw,format=BGRx out of NVMM; videoconvert then makes RGB). */
      scaleCaps: gstFragment.default('video/x-raw'),
      /** Jitter buffer of rtspsrc in ms: small keeps latency low, larger rides out network hiccups. */
      rtspLatencyMs: z.number().int().min(0).max(10_000).default(200),
    })
    .prefault({}),
  ffmpeg: z
    .strictObject({
      /** Arguments placed before `-i`, e.g. ["-hwaccel", "cuda"] on a desktop NVIDIA board. */
      inputArgs: z.array(osText).default([]),
    })
    .prefault({}),
});
export type BoardCapture = z.infer<typeof BoardCaptureSchema>;

/** The capture part of boards/jetson-orin-nano.json, also the documented example. */
export const JETSON_CAPTURE: z.input<typeof BoardCaptureSchema> = {
  launcher: 'gstreamer',
  gstreamer: {
    h264Decoder: 'nvv4l2decoder',
    h265Decoder: 'nvv4l2decoder',
    mjpegDecoder: 'nvv4l2decoder mjpeg=1',
    scaler: 'nvvidconv',
    scaleCaps: 'video/x-raw,format=BGRx',
  },
};
