import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { backoffDelay } from '../../src/capture/backoff.js';
import { BoardCaptureSchema, JETSON_CAPTURE } from '../../src/capture/board.js';
import { CameraConfigSchema, type RawCameraConfig } from '../../src/capture/config.js';
import { FrameAssembler } from '../../src/capture/frame-assembler.js';
import { buildChildCommand, gstQuote, gstTokens } from '../../src/capture/pipeline.js';
import { redact } from '../../src/util/redact.js';
import { crop, rotate } from '../../src/capture/transform.js';

test('assembler: frames straddling chunks come out whole; a partial tail is reported, not emitted', () => {
  const out: Buffer[] = [];
  const a = new FrameAssembler(4, (f) => out.push(f));
  a.push(Buffer.from([1, 1, 1]));
  a.push(Buffer.from([1, 2, 2, 2, 2, 3, 3, 3, 3, 4]));
  a.push(Buffer.from([4]));
  assert.deepEqual(out.map((b) => [...b]), [[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]]);
  assert.equal(a.end(), 2);
  a.push(Buffer.from([5, 5, 5, 5]));
  assert.deepEqual([...out[3]!], [5, 5, 5, 5], 'a new stream starts clean after end()');
  assert.equal(a.end(), 0);
  assert.throws(() => new FrameAssembler(0, () => {}), /positive integer/);
  assert.throws(() => new FrameAssembler(2.5, () => {}), /positive integer, got 2\.5/);
});

test('assembler: a released buffer is filled again, once however often it is released; a held one never is', () => {
  const frames: Array<{ data: Buffer; release: () => void }> = [];
  const a = new FrameAssembler(2, (data, release) => frames.push({ data, release }));
  a.push(Buffer.from([1, 1, 2, 2, 3, 3]));
  const [first, second] = frames;
  first!.release();
  first!.release();
  assert.equal(a.spareBuffers, 1, 'a buffer released twice waits once');
  a.push(Buffer.from([4, 4, 5, 5]));
  // The frame after the release was being filled already; the one after that gets the buffer.
  assert.notEqual(frames[3]!.data, first!.data);
  assert.equal(frames[4]!.data, first!.data, 'the released buffer was reused');
  assert.deepEqual([...first!.data], [5, 5]);
  assert.deepEqual([...second!.data], [2, 2], 'a frame never released keeps its pixels');
  assert.equal(a.spareBuffers, 0);
  for (const f of frames) f.release();
  assert.equal(a.spareBuffers, 3, 'at most three buffers wait for reuse');
});

test('assembler: a reader filling target() in place gets the same whole frames; advancing past a frame is refused', () => {
  const out: number[][] = [];
  const a = new FrameAssembler(3, (f) => out.push([...f]));
  const write = (bytes: number[]) => {
    for (let i = 0; i < bytes.length; ) {
      const into = a.target();
      const n = Math.min(into.length, bytes.length - i);
      into.set(bytes.slice(i, i + n));
      a.advance(n);
      i += n;
    }
  };
  write([1, 1]);
  write([1, 2, 2, 2, 3]);
  assert.deepEqual(out, [[1, 1, 1], [2, 2, 2]]);
  assert.equal(a.target().length, 2, 'the third frame has one byte so far');
  assert.throws(() => a.advance(3), /cannot advance 3 bytes with 2 left in the frame/);
  // A negative or fractional count would move the fill mark backwards or off a byte boundary.
  assert.throws(() => a.advance(-1), /cannot advance -1 bytes/);
  assert.throws(() => a.advance(0.5), /cannot advance 0\.5 bytes/);
  assert.equal(a.target().length, 2, 'a refused advance moved nothing');
  assert.equal(a.end(), 1);
});

test('assembler: rows padded in the stream (GStreamer RGB) come out packed, read in place or copied, and the reused buffer too', () => {
  // 2 rows of 3 pixel bytes, each padded to a stride of 4 (the 0 is padding).
  const stream = [1, 1, 1, 0, 2, 2, 2, 0, 3, 3, 3, 0, 4, 4, 4, 0, 5, 5, 5, 0, 6, 6, 6, 0];
  const copied: Array<{ data: Buffer; release: () => void }> = [];
  const a = new FrameAssembler(6, (data, release) => copied.push({ data, release }), { rows: 2, stride: 4 });
  assert.equal(a.streamBytes, 8);
  a.push(Buffer.from(stream.slice(0, 5)));
  a.push(Buffer.from(stream.slice(5, 16)));
  copied[0]!.release();
  a.push(Buffer.from(stream.slice(16)));
  assert.deepEqual(copied.map((f) => [...f.data]), [[1, 1, 1, 2, 2, 2], [3, 3, 3, 4, 4, 4], [5, 5, 5, 6, 6, 6]]);

  const inPlace: number[][] = [];
  const b = new FrameAssembler(6, (f) => inPlace.push([...f]), { rows: 2, stride: 4 });
  for (let i = 0; i < stream.length; ) {
    const into = b.target();
    const n = Math.min(into.length, 3, stream.length - i);
    into.set(stream.slice(i, i + n));
    b.advance(n);
    i += n;
  }
  assert.deepEqual(inPlace, [[1, 1, 1, 2, 2, 2], [3, 3, 3, 4, 4, 4], [5, 5, 5, 6, 6, 6]]);
  assert.throws(() => new FrameAssembler(6, () => {}, { rows: 2, stride: 2 }), /6 bytes cannot be 2 rows of a 2-byte stride/);
  // Rows must split the frame evenly: 7 bytes are not 2 whole rows.
  assert.throws(() => new FrameAssembler(7, () => {}, { rows: 2, stride: 4 }), /7 bytes cannot be 2 rows of a 4-byte stride/);
});

test('crop and rotate move whole pixels (clockwise), on a 3x2 image of 1-byte pixels', () => {
  // 1 2 3
  // 4 5 6
  const img = { data: Buffer.from([1, 2, 3, 4, 5, 6]), width: 3, height: 2 };
  const r90 = rotate(img, 90, 1);
  assert.deepEqual([r90.width, r90.height, [...r90.data]], [2, 3, [4, 1, 5, 2, 6, 3]]);
  const r180 = rotate(img, 180, 1);
  assert.deepEqual([...r180.data], [6, 5, 4, 3, 2, 1]);
  const r270 = rotate(img, 270, 1);
  assert.deepEqual([r270.width, r270.height, [...r270.data]], [2, 3, [3, 6, 2, 5, 1, 4]]);
  assert.equal(rotate(img, 0, 1), img);
  const c = crop(img, { x: 1, y: 0, width: 2, height: 2 }, 1);
  assert.deepEqual([c.width, c.height, [...c.data]], [2, 2, [2, 3, 5, 6]]);
  assert.throws(() => crop(img, { x: 2, y: 0, width: 2, height: 1 }, 1), /does not fit in a 3x2 frame/);
});

test('backoff: doubles per failure in a row, capped, spread by at most ±jitter', () => {
  const p = { initialMs: 100, maxMs: 1000, jitter: 0.2 };
  assert.deepEqual([1, 2, 3, 4, 5, 9].map((n) => backoffDelay(n, p, () => 0.5)), [100, 200, 400, 800, 1000, 1000]);
  assert.equal(backoffDelay(1, p, () => 0), 80);
  assert.equal(backoffDelay(1, p, () => 1), 120);
  // The spread is a fraction of the current delay, not of the first one: at 400 ms it is ±80.
  assert.equal(backoffDelay(3, p, () => 0), 320);
  assert.equal(backoffDelay(3, p, () => 1), 480);
  // At the cap the jitter still works both ways, so cameras that all reached maxMs do not
  // restart in lockstep; the cap bounds the base delay, not the jittered one.
  assert.equal(backoffDelay(9, p, () => 0), 800);
  assert.equal(backoffDelay(9, p, () => 1), 1200);
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(3, p);
    assert.ok(d >= 320 && d <= 480, `delay ${d}`);
  }
});

test('redact: user-info of any URL and every known secret (raw or percent-encoded) become ***', () => {
  assert.equal(redact('rtsp://admin:pw@cam/1: refused; http://u@h/x'), 'rtsp://***@cam/1: refused; http://***@h/x');
  assert.equal(redact('auth with p@ss/1 and p%40ss%2F1 failed', ['p@ss/1']), 'auth with *** and *** failed');
  // Every occurrence, not just the first; schemes in any case (URL schemes are case-insensitive).
  assert.equal(redact('pw=hunter2 retry pw=hunter2', ['hunter2']), 'pw=*** retry pw=***');
  assert.equal(redact('RTSP://admin:pw@cam/1'), 'RTSP://***@cam/1');
  // An @ after the host is part of the path, not user-info: the host stays readable in the log.
  assert.equal(redact('rtsp://cam/stream@main refused'), 'rtsp://cam/stream@main refused');
  // An empty secret (an empty password variable) hides nothing, and breaks nothing.
  assert.equal(redact('connection refused', ['', 'hunter2']), 'connection refused');
});

test('gst tokens keep quoted values whole; gstQuote escapes what would end the quotes', () => {
  assert.deepEqual(gstTokens('filesrc location="a b ! c" ! decodebin'), ['filesrc', 'location="a b ! c"', '!', 'decodebin']);
  assert.deepEqual(gstTokens('x location="q\\"uote" ! y'), ['x', 'location="q\\"uote"', '!', 'y']);
  assert.throws(() => gstTokens('x location="open'), /unbalanced double quote/);
  assert.equal(gstQuote('a"b\\c'), '"a\\"b\\\\c"');
});

const parse = (c: Record<string, unknown>): RawCameraConfig => CameraConfigSchema.parse({ name: 'c1', ...c }) as RawCameraConfig;
const desktop = BoardCaptureSchema.parse({});
const jetson = BoardCaptureSchema.parse(JETSON_CAPTURE);
const gst = (c: Record<string, unknown>, board = jetson): string => buildChildCommand(parse(c), board, {}).args.join(' ');

test('pipelines: Jetson uses Argus, NVDEC and VIC; every pipeline ends in RGB of the output size on fd 1', () => {
  assert.equal(
    gst({ type: 'csi', sensorId: 1, sensorMode: 2, flip: 2, width: 320, height: 240 }),
    '-q nvarguscamerasrc sensor-id=1 sensor-mode=2 ! video/x-raw(memory:NVMM),width=1920,height=1080,framerate=30/1,format=NV12 ! nvvidconv flip-method=2 ! video/x-raw,format=BGRx,width=320,height=240 ! videoconvert ! video/x-raw,format=RGB ! fdsink fd=1 sync=false',
  );
  assert.equal(
    gst({ type: 'v4l2', device: '/dev/video1', input: 'mjpeg', captureWidth: 1280, captureHeight: 720, captureFps: 30 }),
    '-q v4l2src device="/dev/video1" ! image/jpeg,width=1280,height=720,framerate=30/1 ! nvv4l2decoder mjpeg=1 ! nvvidconv ! video/x-raw,format=BGRx,width=640,height=480 ! videoconvert ! video/x-raw,format=RGB ! fdsink fd=1 sync=false',
  );
  assert.equal(
    gst({ type: 'rtsp', url: 'rtsp://10.0.0.5/s1', transport: 'udp', codec: 'h265', username: 'u', password: 'p' }),
    '-q rtspsrc location="rtsp://10.0.0.5/s1" protocols=udp latency=200 user-id="u" user-pw="p" ! rtph265depay ! h265parse ! nvv4l2decoder ! nvvidconv ! video/x-raw,format=BGRx,width=640,height=480 ! videoconvert ! video/x-raw,format=RGB ! fdsink fd=1 sync=false',
  );
  assert.equal(
    gst({ type: 'v4l2', input: 'yuyv', width: 320, height: 240, fps: 10, launcher: 'gstreamer' }, desktop),
    '-q v4l2src device="/dev/video0" ! video/x-raw,format=YUY2,width=320,height=240,framerate=10/1 ! videoconvert ! videoscale ! video/x-raw,width=320,height=240 ! videoconvert ! video/x-raw,format=RGB ! fdsink fd=1 sync=false',
  );
  // A file under gst-launch is paced by the clock (sync=true) and replayed on EOS.
  const file = buildChildCommand(parse({ type: 'file', path: '/v/a b.mp4', launcher: 'gstreamer' }), desktop, {});
  assert.match(file.args.join(' '), /^-q filesrc location="\/v\/a b.mp4" ! decodebin ! .* fdsink fd=1 sync=true$/);
  assert.equal(file.replayOnCleanExit, true);
  // GStreamer pads each RGB row to a multiple of 4 bytes; ffmpeg's rawvideo does not.
  assert.equal(buildChildCommand(parse({ type: 'file', path: 'a.mp4', launcher: 'gstreamer', width: 426 }), desktop, {}).rowStride, 1280);
  assert.equal(buildChildCommand(parse({ type: 'file', path: 'a.mp4', launcher: 'gstreamer', width: 424 }), desktop, {}).rowStride, 1272);
  assert.equal(buildChildCommand(parse({ type: 'file', path: 'a.mp4', launcher: 'ffmpeg', width: 426 }), desktop, {}).rowStride, 1278);
  // The raw override is used as given, with the sink added when missing.
  assert.equal(gst({ type: 'v4l2', pipeline: 'videotestsrc pattern="ball" ! video/x-raw,format=RGB,width=640,height=480' }), '-q videotestsrc pattern="ball" ! video/x-raw,format=RGB,width=640,height=480 ! fdsink fd=1 sync=false');
});

test('pipelines: ffmpeg argv per source, credentials in the URL, board input args first', () => {
  const board = BoardCaptureSchema.parse({ ffmpeg: { inputArgs: ['-hwaccel', 'cuda'] } });
  const rtsp = buildChildCommand(parse({ type: 'rtsp', url: 'rtsp://cam:554/s', usernameEnv: 'U', passwordEnv: 'P' }), board, { U: 'ad min', P: 'p@ss' });
  assert.equal(rtsp.command, 'ffmpeg');
  assert.deepEqual(rtsp.args.slice(4, 14), ['-hwaccel', 'cuda', '-rtsp_transport', 'tcp', '-fflags', 'nobuffer', '-flags', 'low_delay', '-i', 'rtsp://ad%20min:p%40ss@cam:554/s']);
  assert.deepEqual(rtsp.secrets, ['p@ss', 'ad min']);
  assert.deepEqual(rtsp.args.slice(-9), ['-an', '-sn', '-vf', 'scale=640:480', '-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1']);
  const v4l2 = buildChildCommand(parse({ type: 'v4l2', input: 'yuyv', fps: 15 }), desktop, {});
  assert.deepEqual(v4l2.args.slice(4, 14), ['-f', 'v4l2', '-input_format', 'yuyv422', '-video_size', '640x480', '-framerate', '15', '-i', '/dev/video0']);
  const file = buildChildCommand(parse({ type: 'file', path: 'clip.mp4', loop: false }), desktop, {});
  assert.deepEqual(file.args.slice(4, 7), ['-re', '-i', 'clip.mp4']);
  // csi never goes to ffmpeg, whatever the board prefers.
  assert.equal(buildChildCommand(parse({ type: 'csi' }), desktop, {}).launcher, 'gstreamer');
});

test('config: bad camera entries are refused with the field named', () => {
  const issue = (c: Record<string, unknown>): string => {
    const r = CameraConfigSchema.safeParse({ name: 'c1', ...c });
    assert.ok(!r.success, `accepted ${JSON.stringify(c)}`);
    return r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  };
  assert.match(issue({ type: 'rtsp', url: 'http://x' }), /^url: expected an rtsp:\/\//);
  assert.match(issue({ type: 'file', path: 'a.mp4', width: 64, height: 48, roi: { x: 40, y: 0, width: 30, height: 10 } }), /^roi: roi 30x10\+40\+0 does not fit in the 64x48 frame/);
  assert.match(issue({ type: 'csi', launcher: 'ffmpeg' }), /^launcher:/);
  assert.match(issue({ type: 'v4l2', rotate: 45 }), /^rotate:/);
  assert.match(issue({ type: 'v4l2', device: '/dev/video0; reboot' }), /^device: expected a device path/);
  assert.match(issue({ type: 'v4l2', colour: 'red' }), /Unrecognized key: "colour"/);
  assert.match(issue({ type: 'webcam' }), /^type:/);
  assert.match(issue({ type: 'v4l2', pipeline: 'filesrc location="/v/a.avi ! decodebin' }), /^pipeline: unbalanced double quote/);
  assert.match(issue({ type: 'v4l2', reconnect: { initialMs: 5000, maxMs: 1000 } }), /^reconnect\.initialMs: expected at most reconnect\.maxMs \(1000\)/);
  assert.match(String(BoardCaptureSchema.safeParse({ gstreamer: { scaler: 'x location="y"' } }).error), /without quotes/);
  assert.match(issue({ type: 'v4l2', pipeline: 'v4l2src device=/dev/video0\0 ! fakesink' }), /^pipeline: expected no NUL character/);
  assert.match(String(BoardCaptureSchema.safeParse({ gstreamer: { scaler: 'videoscale\0' } }).error), /backslashes or NUL/);
  assert.match(String(BoardCaptureSchema.safeParse({ ffmpeg: { inputArgs: ['-hwaccel', 'cu\0da'] } }).error), /expected no NUL character/);
});
