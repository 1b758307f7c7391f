/**
 * The PNG container, read here so that the native addon can decode the frames cameras and
 * image folders mostly hold (8-bit gray, RGB or RGBA, not interlaced) without sharp.
 *
 * Why: sharp's decode-and-shrink of a 256×256 RGB PNG costs 3.4–4.1 ms of CPU, much of it
 * libvips' per-image set-up, and on a two-core board the CPU spent beside the model slows it
 * (docs/bench.md). Walking the chunks here, inflating IDAT with Node's zlib and unfiltering and
 * resizing in C++ costs 1.6–1.9 ms.
 *
 * Every chunk's CRC is checked, so a corrupt or truncated file is refused with the chunk and
 * byte named. Images this path does not decode (palette, 16-bit, gray with alpha, interlaced)
 * are handed back to sharp, unchanged. An embedded ICC profile is ignored here as everywhere
 * in the daemon (the toolchain's Pillow ignores it too, image.ts), so it needs no hand-off.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { PreprocessError } from './errors.js';
import { PNG_SIGNATURE } from './header.js';
/** The native kernels' largest side (kMaxSide in native/src/image_ops.h). */
const MAX_SIDE = 16384;
/**
 * Largest image this path decodes: sharp's default input limit (0x3FFF²), so an image this
 * path leaves to sharp meets the same limit there. A few hundred bytes of PNG can declare
 * 16384×16384 RGBA, a gigabyte of scanlines.
 */
export const MAX_PIXELS = 0x3fff * 0x3fff;
/** Output chunk of the pool-side inflate: memory grows with what the stream really holds, not with what IHDR claims. */
const POOL_CHUNK_BYTES = 1024 * 1024;
/** Largest chunk length the format allows (2^31 - 1). */
const MAX_CHUNK = 0x7fffffff;
/** Allowed bit depths per colour type (PNG spec, table 11.1). */
const DEPTHS: Record<number, readonly number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
/** Channels of the colour types the fast path decodes: gray, RGB, RGBA. */
const FAST_CHANNELS: Record<number, 1 | 3 | 4> = { 0: 1, 2: 3, 6: 4 };
const COLOUR_NAMES: Record<number, string> = { 0: 'gray', 2: 'RGB', 3: 'palette', 4: 'gray+alpha', 6: 'RGBA' };
const CHANNEL_NAMES: Record<1 | 3 | 4, string> = { 1: 'gray', 3: 'RGB', 4: 'RGBA' };

/** IHDR's fields this reader uses. */
interface PngHeader {
  width: number;
  height: number;
  depth: number;
  colour: number;
  interlace: number;
}

const inflate = promisify(zlib.inflate);

/** An image the fast path decodes: its size and samples per pixel, and its IDAT data. */
export interface PngScanlinePlan {
  kind: 'scanlines';
  width: number;
  height: number;
  channels: 1 | 3 | 4;
  idat: Buffer[];
}

/** The file is a valid PNG the fast path leaves to sharp, and why. */
export interface PngSharpPlan {
  kind: 'sharp';
  why: string;
}

export function isPng(data: Buffer): boolean {
  return data.length >= PNG_SIGNATURE.length && data.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE);
}

/**
 * Walks a PNG's chunks. Throws a `decode` PreprocessError for a broken container (truncated,
 * bad CRC, IHDR missing or invalid, unknown critical chunk, no IDAT, no IEND).
 */
export function readPng(data: Buffer, origin: string): PngScanlinePlan | PngSharpPlan {
  const fail: (message: string) => never = (message) => {
    throw new PreprocessError('decode', origin, `cannot decode PNG: ${message}`);
  };
  if (!isPng(data)) fail('no PNG signature');
  // zlib.crc32 arrived in Node 20.15; without it the CRCs cannot be checked here.
  if (typeof zlib.crc32 !== 'function') return { kind: 'sharp', why: `Node ${process.version} has no zlib.crc32` };
  let header: PngHeader | undefined;
  const idat: Buffer[] = [];
  for (let at = PNG_SIGNATURE.length; ; ) {
    if (at + 8 > data.length) fail(`the file ends at byte ${data.length}, inside a chunk header and before IEND`);
    const length = data.readUInt32BE(at);
    const type = data.toString('latin1', at + 4, at + 8);
    if (length > MAX_CHUNK) fail(`chunk "${type}" at byte ${at} declares ${length} bytes, more than PNG allows`);
    const end = at + 12 + length;
    if (end > data.length) fail(`chunk "${type}" at byte ${at} needs ${length} bytes of data, the file ends at byte ${data.length}`);
    const body = data.subarray(at + 8, at + 8 + length);
    if (zlib.crc32(data.subarray(at + 4, at + 8 + length)) !== data.readUInt32BE(at + 8 + length)) {
      fail(`chunk "${type}" at byte ${at} fails its CRC check`);
    }
    if (header === undefined && type !== 'IHDR') fail(`the first chunk is "${type}", not IHDR`);
    switch (type) {
      case 'IHDR':
        if (header !== undefined) fail(`a second IHDR at byte ${at}`);
        header = parseHeader(body, fail);
        break;
      case 'IDAT':
        idat.push(body);
        break;
      case 'PLTE':
        break;
      case 'IEND':
        return plan(header!, idat, fail); // header is set: the first chunk was IHDR
      default:
        // Bit 5 of the first byte clear (an upper-case letter) marks a chunk a decoder must understand.
        if (!(type.charCodeAt(0) & 0x20)) fail(`unknown critical chunk "${type}" at byte ${at}`);
    }
    at = end;
  }
}

function parseHeader(body: Buffer, fail: (message: string) => never): PngHeader {
  if (body.length !== 13) fail(`IHDR holds ${body.length} bytes, not 13`);
  const width = body.readUInt32BE(0);
  const height = body.readUInt32BE(4);
  const [depth, colour, compression, filter, interlace] = [body[8]!, body[9]!, body[10]!, body[11]!, body[12]!];
  if (width === 0 || height === 0) fail(`IHDR gives a ${width}x${height} image`);
  const depths = DEPTHS[colour];
  if (!depths) fail(`IHDR colour type ${colour} does not exist`);
  if (!depths.includes(depth)) fail(`IHDR bit depth ${depth} is not allowed with colour type ${colour}`);
  if (compression !== 0 || filter !== 0) fail(`IHDR compression method ${compression} / filter method ${filter} (only 0 exists)`);
  if (interlace > 1) fail(`IHDR interlace method ${interlace} does not exist`);
  return { width, height, depth, colour, interlace };
}

function plan(header: PngHeader, idat: Buffer[], fail: (message: string) => never): PngScanlinePlan | PngSharpPlan {
  if (idat.length === 0) fail('no IDAT chunk before IEND');
  const { width, height, depth, colour, interlace } = header;
  const channels = FAST_CHANNELS[colour];
  const kind = `${depth}-bit ${COLOUR_NAMES[colour]}`;
  if (channels === undefined || depth !== 8) return { kind: 'sharp', why: `${kind} image` };
  if (interlace === 1) return { kind: 'sharp', why: 'interlaced image' };
  if (width > MAX_SIDE || height > MAX_SIDE) return { kind: 'sharp', why: `${width}x${height} is larger than ${MAX_SIDE} on a side` };
  if (width * height > MAX_PIXELS) return { kind: 'sharp', why: `${width}x${height} is more than ${MAX_PIXELS} pixels` };
  return { kind: 'scanlines', width, height, channels, idat };
}

/** Bytes of the inflated IDAT stream: per row, a filter byte and width × channels samples. */
export function scanlineBytes(p: Pick<PngScanlinePlan, 'width' | 'height' | 'channels'>): number {
  return p.height * (1 + p.width * p.channels);
}

/**
 * Scanlines up to this size are inflated on the calling thread. Measured on a 256×256 RGB
 * frame (197 KB): 0.20 ms of CPU inline against 0.45 ms through the thread pool, whose
 * stream set-up costs more than the inflate; at ~1 GB/s this bounds an event-loop stall at
 * about half a millisecond. Larger images inflate on the pool.
 */
export const INLINE_INFLATE_BYTES = 512 * 1024;

/**
 * IDAT inflated and checked to be exactly the image's scanlines. Inline, the output buffer is
 * the image plus one byte, so one zlib call both fills it and sees the stream end; on the pool,
 * 1 MiB chunks (the default 16 KiB cost a round trip each). Either way a stream that inflates
 * past the image is cut off one byte after it instead of filling memory.
 */
export async function inflateScanlines(p: PngScanlinePlan, origin: string): Promise<Buffer> {
  const expected = scanlineBytes(p);
  const limit = expected + 1;
  const what = `a ${p.width}x${p.height} ${CHANNEL_NAMES[p.channels]} image has ${expected} bytes of scanlines`;
  let rows: Buffer;
  try {
    const stream = p.idat.length === 1 ? p.idat[0]! : Buffer.concat(p.idat);
    rows =
      expected <= INLINE_INFLATE_BYTES
        ? zlib.inflateSync(stream, { chunkSize: Math.max(64, limit), maxOutputLength: limit })
        : await inflate(stream, { chunkSize: Math.min(limit, POOL_CHUNK_BYTES), maxOutputLength: limit });
  } catch (err) {
    const tooLarge = err instanceof RangeError || (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
    const message = tooLarge ? `IDAT inflates to more than ${expected} bytes: ${what}` : `IDAT is not a valid zlib stream (${err instanceof Error ? err.message : String(err)})`;
    throw new PreprocessError('decode', origin, `cannot decode PNG: ${message}`);
  }
  if (rows.length !== expected) throw new PreprocessError('decode', origin, `cannot decode PNG: IDAT inflates to ${rows.length} bytes, ${what}`);
  return rows;
}
