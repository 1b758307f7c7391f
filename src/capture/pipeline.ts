/**
 * Turns a camera entry and the board profile into the argv of a child process that writes
 * raw rgb24 frames of width×height to stdout. Always an argument array: no shell ever sees
 * a URL or a path. gst-launch-1.0 treats each argv element as one token, and values are
 * double-quoted with `\` and `"` escaped, so a URL cannot add elements to a pipeline either.
 */
import type { BoardCapture } from './board.js';
import type { RawCameraConfig } from './config.js';

export interface ChildCommand {
  launcher: 'ffmpeg' | 'gstreamer';
  command: string;
  args: string[];
  /** Values that must never reach a log (passwords, user names), for redaction. */
  secrets: string[];
  /** gst-launch ends at EOS, ffmpeg at the end of a file: a clean exit then means "replay". */
  replayOnCleanExit: boolean;
  /** Bytes from the start of one row of a frame to the next in the child's output. */
  rowStride: number;
}

export const RGB_BYTES_PER_PIXEL = 3;

/**
 * GStreamer lays out video/x-raw,format=RGB with each row padded to a multiple of 4 bytes
 * (426 pixels: 1278 bytes of pixels in a 1280-byte row), and fdsink writes the padding too;
 * ffmpeg's rawvideo writes rows back to back.
 */
export function rgbRowStride(launcher: ChildCommand['launcher'], width: number): number {
  const bytes = width * RGB_BYTES_PER_PIXEL;
  return launcher === 'gstreamer' ? Math.ceil(bytes / 4) * 4 : bytes;
}

export interface Binaries {
  ffmpeg?: string;
  gstLaunch?: string;
  /** Makes the FIFO frames are read from (src/capture/process-source.ts). */
  mkfifo?: string;
}

/** Credentials of a network camera: environment variables named in the config win over inline values. */
export function resolveCredentials(
  camera: { username?: string | undefined; password?: string | undefined; usernameEnv?: string | undefined; passwordEnv?: string | undefined; name: string },
  env: NodeJS.ProcessEnv,
): { username?: string; password?: string } {
  const pick = (inline: string | undefined, envName: string | undefined, what: string): string | undefined => {
    if (envName === undefined) return inline;
    const value = env[envName];
    if (value === undefined || value === '') {
      throw new Error(`cameras.${camera.name}.${what}Env: environment variable ${envName} is not set`);
    }
    return value;
  };
  const out: { username?: string; password?: string } = {};
  const username = pick(camera.username, camera.usernameEnv, 'username');
  const password = pick(camera.password, camera.passwordEnv, 'password');
  if (username !== undefined) out.username = username;
  if (password !== undefined) out.password = password;
  return out;
}

/** The URL with credentials placed in its user-info part (percent-encoded), for ffmpeg. */
export function urlWithCredentials(url: string, creds: { username?: string; password?: string }): string {
  if (creds.username === undefined && creds.password === undefined) return url;
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(?:[^/@]*@)?(.*)$/i.exec(url);
  if (!m) return url;
  const user = encodeURIComponent(creds.username ?? '');
  const pass = creds.password === undefined ? '' : `:${encodeURIComponent(creds.password)}`;
  return `${m[1]}${user}${pass}@${m[2]}`;
}

/** A gst-launch property value, double-quoted so spaces, `!` and `;` stay inside it. */
export function gstQuote(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * Splits a gst-launch description into argv tokens like a shell would for double quotes,
 * but keeps the quotes: gst-launch-1.0 parses them itself.
 */
export function gstTokens(description: string): string[] {
  const tokens: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < description.length; i++) {
    const c = description[i]!;
    if (quoted && c === '\\' && i + 1 < description.length) {
      current += c + description[++i]!;
    } else if (c === '"') {
      quoted = !quoted;
      current += c;
    } else if (!quoted && /\s/.test(c)) {
      if (current) tokens.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  if (quoted) throw new Error(`unbalanced double quote in pipeline: ${description}`);
  if (current) tokens.push(current);
  return tokens;
}

function chooseLauncher(camera: RawCameraConfig, board: BoardCapture): 'ffmpeg' | 'gstreamer' {
  if (camera.pipeline !== undefined || camera.type === 'csi') return 'gstreamer';
  return camera.launcher ?? board.launcher;
}

export function buildChildCommand(
  camera: RawCameraConfig,
  board: BoardCapture,
  env: NodeJS.ProcessEnv,
  binaries: Binaries = {},
): ChildCommand {
  const creds = camera.type === 'rtsp' || camera.type === 'http' ? resolveCredentials(camera, env) : {};
  const secrets = [creds.password, creds.username].filter((s): s is string => s !== undefined && s.length > 0);
  const launcher = chooseLauncher(camera, board);
  const replayOnCleanExit = camera.type === 'file' && camera.loop;
  const rowStride = rgbRowStride(launcher, camera.width);
  if (launcher === 'ffmpeg') {
    return { launcher, command: binaries.ffmpeg ?? 'ffmpeg', args: ffmpegArgs(camera, board, creds), secrets, replayOnCleanExit: false, rowStride };
  }
  return { launcher, command: binaries.gstLaunch ?? 'gst-launch-1.0', args: ['-q', ...gstArgs(camera, board, creds)], secrets, replayOnCleanExit, rowStride };
}

function ffmpegArgs(camera: RawCameraConfig, board: BoardCapture, creds: { username?: string; password?: string }): string[] {
  const input: string[] = [];
  switch (camera.type) {
    case 'file':
      input.push('-re', ...(camera.loop ? ['-stream_loop', '-1'] : []), '-i', camera.path);
      break;
    case 'v4l2':
      input.push(
        '-f', 'v4l2',
        '-input_format', camera.input === 'mjpeg' ? 'mjpeg' : 'yuyv422',
        '-video_size', `${camera.captureWidth ?? camera.width}x${camera.captureHeight ?? camera.height}`,
        '-framerate', String(camera.captureFps ?? Math.ceil(camera.fps)),
        '-i', camera.device,
      );
      break;
    case 'rtsp':
      input.push('-rtsp_transport', camera.transport, '-fflags', 'nobuffer', '-flags', 'low_delay', '-i', urlWithCredentials(camera.url, creds));
      break;
    case 'http':
      input.push('-fflags', 'nobuffer', '-i', urlWithCredentials(camera.url, creds));
      break;
    case 'csi':
      throw new Error('unreachable: csi is always gstreamer');
  }
  return [
    '-hide_banner', '-nostdin', '-loglevel', 'error',
    ...board.ffmpeg.inputArgs,
    ...input,
    '-an', '-sn',
    '-vf', `scale=${camera.width}:${camera.height}`,
    '-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1',
  ];
}

function gstArgs(camera: RawCameraConfig, board: BoardCapture, creds: { username?: string; password?: string }): string[] {
  const live = camera.type !== 'file';
  const sink = ['fdsink', 'fd=1', `sync=${live ? 'false' : 'true'}`];
  if (camera.pipeline !== undefined) {
    const tokens = gstTokens(camera.pipeline);
    return tokens.includes('fdsink') ? tokens : [...tokens, '!', ...sink];
  }
  const g = board.gstreamer;
  const link = (...parts: string[]): string[] => parts.flatMap((p, i) => (i === 0 ? gstTokens(p) : ['!', ...gstTokens(p)]));
  const toRgb = (scaler: string, scaleCaps: string): string[] =>
    link(scaler, `${scaleCaps},width=${camera.width},height=${camera.height}`, 'videoconvert', 'video/x-raw,format=RGB', sink.join(' '));
  const auth = (): string[] => [
    ...(creds.username !== undefined ? [`user-id=${gstQuote(creds.username)}`] : []),
    ...(creds.password !== undefined ? [`user-pw=${gstQuote(creds.password)}`] : []),
  ];
  switch (camera.type) {
    case 'file':
      return ['filesrc', `location=${gstQuote(camera.path)}`, '!', 'decodebin', '!', ...toRgb(g.scaler, g.scaleCaps)];
    case 'v4l2': {
      const size = `width=${camera.captureWidth ?? camera.width},height=${camera.captureHeight ?? camera.height},framerate=${camera.captureFps ?? Math.ceil(camera.fps)}/1`;
      const decode = camera.input === 'mjpeg' ? [...link(`image/jpeg,${size}`, g.mjpegDecoder)] : [`video/x-raw,format=YUY2,${size}`];
      return ['v4l2src', `device=${gstQuote(camera.device)}`, '!', ...decode, '!', ...toRgb(g.scaler, g.scaleCaps)];
    }
    case 'csi':
      return [
        'nvarguscamerasrc', `sensor-id=${camera.sensorId}`, ...(camera.sensorMode !== undefined ? [`sensor-mode=${camera.sensorMode}`] : []),
        '!', `video/x-raw(memory:NVMM),width=${camera.captureWidth},height=${camera.captureHeight},framerate=${camera.captureFps}/1,format=NV12`,
        '!', ...toRgb(`nvvidconv flip-method=${camera.flip}`, 'video/x-raw,format=BGRx'),
      ];
    case 'rtsp': {
      const [parser, decoder] = camera.codec === 'h264' ? [g.h264Parser, g.h264Decoder] : [g.h265Parser, g.h265Decoder];
      return [
        'rtspsrc', `location=${gstQuote(camera.url)}`, `protocols=${camera.transport}`, `latency=${g.rtspLatencyMs}`, ...auth(),
        '!', ...link(`rtp${camera.codec}depay`, parser, decoder), '!', ...toRgb(g.scaler, g.scaleCaps),
      ];
    }
    case 'http':
      // MJPEG over HTTP (multipart/x-mixed-replace); decodebin does not plug multipartdemux on a live stream.
      return ['souphttpsrc', `location=${gstQuote(camera.url)}`, 'is-live=true', ...auth(), '!', 'multipartdemux', '!', ...link(g.mjpegDecoder), '!', ...toRgb(g.scaler, g.scaleCaps)];
  }
}
