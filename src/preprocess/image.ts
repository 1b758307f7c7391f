/**
 * Frame → model input: decode (sharp), exact-size bilinear resize to the manifest's input
 * size (Pillow's convention, see resize.ts), channel order, then (pixel * scale - mean[c]) / std[c] into planar float32 NCHW.
 * mean/std are indexed by the tensor's channel, i.e. in the manifest's `color` order.
 *
 * Supported frame formats: `encoded` (JPEG, PNG, WebP, TIFF: whatever sharp decodes) and the
 * raw layouts rgb24, bgr24, rgba (alpha dropped) and gray (replicated to three channels).
 * An encoded image decodes to the pixels the toolchain's Pillow makes of it, since the bundle's
 * threshold was set on those: alpha dropped, colour profile and EXIF orientation ignored, CMYK
 * and 16-bit grey converted its way (docs/inference.md, "What an image file becomes").
 * yuyv and nv12 are refused here with a `format` PreprocessError; where the native addon loads,
 * src/native/preprocessor.ts converts them (and decodes most PNGs) instead of this path.
 */
import sharp, { type Metadata, type Sharp } from 'sharp';
import type { InputSpec } from '../bundle/manifest.js';
import type { Frame, PixelFormat } from '../capture/frame.js';
import { PreprocessError } from './errors.js';
import { encodedHeader, type EncodedHeader, type PixelLayout } from './header.js';
import { resizeBilinear } from './resize.js';

// One libvips thread per image. sharp picks 1 itself on glibc's malloc but one per core under
// jemalloc (MOEAD_MALLOC=jemalloc): camera frames are small, frames already decode in parallel
// on libuv's pool, and a second thread per frame only competes with the model for the cores.
sharp.concurrency(1);
// No libvips operation cache: every frame and snapshot is a new image, so nothing in it is
// ever reused. With it off, the threads' malloc arenas grew 2.6 MiB over the first minutes of
// a 10 fps run instead of 7.8 MiB (docs/bench.md, memory).
sharp.cache(false);

/** Interleaved 8-bit pixels; `order` says where R, G and B sit for 3/4-channel data. */
export interface Pixels {
  data: Buffer;
  width: number;
  height: number;
  channels: 1 | 3 | 4;
  order: 'RGB' | 'BGR';
}

interface RawLayout {
  channels: 1 | 3 | 4;
  order: 'RGB' | 'BGR';
}

const RAW_LAYOUTS: Partial<Record<PixelFormat, RawLayout>> = {
  rgb24: { channels: 3, order: 'RGB' },
  bgr24: { channels: 3, order: 'BGR' },
  rgba: { channels: 4, order: 'RGB' },
  gray: { channels: 1, order: 'RGB' },
};

export const SUPPORTED_FRAME_FORMATS: readonly PixelFormat[] = ['encoded', ...(Object.keys(RAW_LAYOUTS) as PixelFormat[])];

/** How a frame is named in errors: its file when it came from one, else camera#index. */
export function frameOrigin(frame: Frame): string {
  return frame.origin ?? `${frame.camera}#${frame.index}`;
}

/** The frame's raw pixels without decoding, checked against its declared size. */
function rawPixels(frame: Frame): Pixels {
  const layout = RAW_LAYOUTS[frame.format];
  if (!layout) {
    throw new PreprocessError('format', frameOrigin(frame), `pixel format "${frame.format}" is not supported (supported: ${SUPPORTED_FRAME_FORMATS.join(', ')})`);
  }
  const expected = frame.width * frame.height * layout.channels;
  if (!(frame.width > 0 && frame.height > 0) || frame.data.length !== expected) {
    throw new PreprocessError(
      'size',
      frameOrigin(frame),
      `${frame.format} frame of ${frame.width}x${frame.height} needs ${expected} bytes, got ${frame.data.length}`,
    );
  }
  return { data: frame.data, width: frame.width, height: frame.height, ...layout };
}

/** Runs sharp on a frame, turning any failure into a `decode` PreprocessError naming the frame. */
async function withSharp<T>(frame: Frame, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw new PreprocessError('decode', frameOrigin(frame), `cannot decode image: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * The frame as a sharp pipeline. `failOn: 'warning'` refuses truncated JPEG/PNG data instead of
 * returning grey rows; `ignoreIcc` keeps the stored values, as Pillow does: by default sharp
 * converts an embedded profile (a phone's Display P3, a camera's Adobe RGB) to sRGB, which moved
 * pixels by up to 17 levels from what the toolchain trained and set the threshold on.
 */
function sharpOf(frame: Frame): Sharp {
  if (frame.format === 'encoded') return sharp(frame.data, { failOn: 'warning', ignoreIcc: true });
  const raw = rawPixels(frame);
  return sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } });
}

/**
 * Runs a frame through sharp: decode when encoded, then (optionally) an exact-size
 * bilinear resize, always ending in 3-channel 8-bit pixels. Only for frames without alpha
 * when resizing: sharp resizes alpha images premultiplied and drops the alpha only after, so
 * a transparent pixel's colour came out black (see pixelsAtSize).
 */
async function throughSharp(frame: Frame, size?: { width: number; height: number }): Promise<Pixels> {
  const order = RAW_LAYOUTS[frame.format]?.order ?? 'RGB';
  return withSharp(frame, async () => {
    let image = sharpOf(frame).removeAlpha().toColourspace('srgb');
    if (size) image = image.resize(size.width, size.height, { fit: 'fill', kernel: 'linear', fastShrinkOnLoad: false });
    const { data, info } = await image.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return { data, width: info.width, height: info.height, channels: 3, order };
  });
}

/**
 * CMYK (and YCCK) JPEG as Pillow's convert("RGB") has it: each colour is (255 − ink)(255 − K)/255,
 * rounded as Pillow's MULDIV255 does, with no colour profile. sharp would convert through its CMYK
 * ICC profile instead: 25 to 135 levels away in our tests. libvips and Pillow both undo Adobe's
 * inverted CMYK, so the samples read here are Pillow's.
 */
async function cmykPixels(frame: Frame): Promise<Pixels> {
  const { data, info } = await withSharp(frame, () =>
    sharpOf(frame).pipelineColourspace('cmyk').toColourspace('cmyk').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }),
  );
  if (info.channels !== 4) throw new PreprocessError('decode', frameOrigin(frame), `cannot decode image: CMYK decoded to ${info.channels} channels, expected 4`);
  const rgb = Buffer.alloc(info.width * info.height * 3);
  for (let i = 0, o = 0; o < rgb.length; i += 4, o += 3) {
    const white = 255 - data[i + 3]!;
    for (let c = 0; c < 3; c++) {
      const t = data[i + c]! * white + 128;
      rgb[o + c] = white - (((t >> 8) + t) >> 8);
    }
  }
  return { data: rgb, width: info.width, height: info.height, channels: 3, order: 'RGB' };
}

/**
 * 16-bit grey as the toolchain has it (`_eight_bit` in training/moead_edge/data/images.py):
 * value / 257, rounded. libvips keeps the high byte, which is one level lower wherever the
 * rounding goes up: for 8-bit value k < 127, a share of (127 − k)/256 of the pixels.
 */
async function grey16Pixels(frame: Frame): Promise<Pixels> {
  const { data, info } = await withSharp(frame, () =>
    sharpOf(frame).removeAlpha().toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true }),
  );
  if (info.channels !== 1) throw new PreprocessError('decode', frameOrigin(frame), `cannot decode image: 16-bit grey decoded to ${info.channels} channels, expected 1`);
  // libvips writes samples in the machine's byte order: little-endian on every board we target.
  const grey = Buffer.alloc(data.length / 2);
  for (let i = 0; i < grey.length; i++) grey[i] = Math.round(data.readUInt16LE(2 * i) / 257);
  return { data: grey, width: info.width, height: info.height, channels: 1, order: 'RGB' };
}

/**
 * The whole frame as 8-bit pixels at its own size, alpha dropped with the colours as stored
 * (Pillow's convert("RGB") does not composite either), CMYK and 16-bit grey as the toolchain
 * converts them.
 */
async function opaquePixels(frame: Frame, layout: PixelLayout): Promise<Pixels> {
  if (layout === 'cmyk') return cmykPixels(frame);
  if (layout === 'grey16') return grey16Pixels(frame);
  if (frame.format !== 'encoded' && layout === 'plain') return rawPixels(frame);
  return throughSharp(frame);
}

/** The whole frame as 8-bit pixels at its own size (for snapshots). */
export async function decodeFrame(frame: Frame): Promise<Pixels> {
  return opaquePixels(frame, (await frameHeader(frame)).layout);
}

/** Pixels as a raw frame of the same origin, to resize them in sharp. */
function pixelFrame(frame: Frame, pixels: Pixels): Frame {
  const format: PixelFormat = pixels.channels === 1 ? 'gray' : pixels.channels === 4 ? 'rgba' : pixels.order === 'BGR' ? 'bgr24' : 'rgb24';
  return { ...frame, format, width: pixels.width, height: pixels.height, data: pixels.data };
}

/** Metadata's view of the layout, for formats header.ts does not read (WebP, TIFF, ...). */
function metadataLayout(meta: Metadata): PixelLayout {
  if (meta.space === 'cmyk') return 'cmyk';
  if (meta.space === 'grey16') return 'grey16';
  return meta.hasAlpha ? 'alpha' : 'plain';
}

/** Pixel size and layout of a frame without decoding it (header only for PNG and JPEG; sharp's metadata for the rest). */
async function frameHeader(frame: Frame): Promise<EncodedHeader> {
  if (frame.format !== 'encoded') return { width: frame.width, height: frame.height, layout: frame.format === 'rgba' ? 'alpha' : 'plain' };
  const fromHeader = encodedHeader(frame.data);
  if (fromHeader) return fromHeader;
  const meta = await withSharp(frame, () => sharp(frame.data).metadata());
  return { width: meta.width ?? 0, height: meta.height ?? 0, layout: metadataLayout(meta) };
}

/**
 * The frame's pixels at exactly width × height. Shrinking runs in sharp (off the event
 * loop, antialiased like Pillow's bilinear); enlarging, rare for cameras, runs in
 * resizeBilinear because libvips enlarges with a different pixel-centre convention.
 * Frames of a plain layout shrink in their decode pipeline; the others are decoded to opaque
 * 8-bit pixels first and those are shrunk (one more libvips pass, for these frames only).
 */
export async function pixelsAtSize(frame: Frame, width: number, height: number): Promise<Pixels> {
  const source = await frameHeader(frame);
  const shrink = source.width >= width && source.height >= height && !(source.width === width && source.height === height);
  if (shrink && source.layout === 'plain') return throughSharp(frame, { width, height });
  const pixels = await opaquePixels(frame, source.layout);
  if (pixels.width === width && pixels.height === height) return pixels;
  return shrink ? throughSharp(pixelFrame(frame, pixels), { width, height }) : resizeBilinear(pixels, width, height);
}

/** Per-channel lookup tables: 256 normalized values for each tensor channel. */
function normalizationTables(spec: InputSpec): Float32Array[] {
  return [0, 1, 2].map((c) => {
    const table = new Float32Array(256);
    for (let p = 0; p < 256; p++) table[p] = (p * spec.scale - spec.mean[c]!) / spec.std[c]!;
    return table;
  });
}

const tablesCache = new WeakMap<InputSpec, Float32Array[]>();

/**
 * Writes pixels (already at the input size) as planar float32 into `out` at image slot
 * `batchIndex`, converting the channel order to the manifest's.
 */
export function normalizeInto(pixels: Pixels, spec: InputSpec, out: Float32Array, batchIndex = 0): void {
  if (pixels.width !== spec.width || pixels.height !== spec.height) {
    throw new RangeError(`pixels are ${pixels.width}x${pixels.height}, the model input is ${spec.width}x${spec.height}`);
  }
  const plane = spec.width * spec.height;
  const base = batchIndex * 3 * plane;
  if (out.length < base + 3 * plane) throw new RangeError(`output holds ${out.length} values, image ${batchIndex} needs ${base + 3 * plane}`);
  let tables = tablesCache.get(spec);
  if (!tables) {
    tables = normalizationTables(spec);
    tablesCache.set(spec, tables);
  }
  const { data, channels } = pixels;
  for (let c = 0; c < 3; c++) {
    const table = tables[c]!;
    // Tensor channel c holds colour spec.color[c]; find where that colour sits in the pixel.
    const colour = spec.color[c]!;
    const offset = channels === 1 ? 0 : pixels.order.indexOf(colour);
    const dst = base + c * plane;
    for (let i = 0, src = offset; i < plane; i++, src += channels) out[dst + i] = table[data[src]!]!;
  }
}

/**
 * One frame → a [1, 3, H, W] float32 tensor buffer (owned, transferable): `out` when given
 * (a spare tensor of that size, reused), else a new one.
 */
export async function preprocessFrame(frame: Frame, spec: InputSpec, out?: Float32Array): Promise<Float32Array> {
  if (!out) return preprocessBatch([frame], spec);
  const length = 3 * spec.width * spec.height;
  if (out.length !== length) throw new RangeError(`out holds ${out.length} floats, a 3 × ${spec.height} × ${spec.width} tensor needs ${length}`);
  normalizeInto(await pixelsAtSize(frame, spec.width, spec.height), spec, out);
  return out;
}

/** Frames → one [N, 3, H, W] float32 tensor buffer; the first bad frame throws. */
export async function preprocessBatch(frames: readonly Frame[], spec: InputSpec): Promise<Float32Array> {
  const out = new Float32Array(frames.length * 3 * spec.width * spec.height);
  const pixels = await Promise.all(frames.map((f) => pixelsAtSize(f, spec.width, spec.height)));
  pixels.forEach((p, i) => normalizeInto(p, spec, out, i));
  return out;
}
