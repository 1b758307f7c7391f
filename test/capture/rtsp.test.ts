import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { freePort, gstElementsMissing, rtspServerAvailable, startCamera, startRtspServer, stopChild, testClip } from './helpers.js';

const W = 64;
const H = 48;

/** Reads a loopback RTSP server, loses it, and reads it again once it is back on the same port. */
async function readDropReread(launcher: 'ffmpeg' | 'gstreamer'): Promise<void> {
  const clip = testClip(160, 120, 25, 20);
  const port = await freePort();
  let server = await startRtspServer(port, clip);
  const cam = await startCamera({
    type: 'rtsp', url: `rtsp://127.0.0.1:${port}/live`, transport: 'tcp', launcher, width: W, height: H, fps: 30,
    stallTimeoutS: 6, reconnect: { initialMs: 200, maxMs: 1000, jitter: 0.2 },
  });
  try {
    await cam.until(() => cam.frames.length >= 3, 'frames from the RTSP server');
    assert.equal(cam.frames[0]!.data.length, W * H * 3);
    await stopChild(server);
    await cam.until(() => cam.stats().restarts >= 1 && cam.statuses.at(-1)?.state === 'no_frames', 'the source to notice the server is gone');
    const before = cam.frames.length;
    server = await startRtspServer(port, clip);
    await cam.until(() => cam.frames.length >= before + 3, 'frames after the server came back', 15_000);
    assert.equal(cam.statuses.at(-1)?.state, 'streaming');
    const states = cam.statuses.map((s) => s.state);
    assert.deepEqual(states.slice(0, 3), ['starting', 'streaming', 'no_frames']);
  } finally {
    await cam.stop();
    await stopChild(server);
  }
}

test('rtsp (ffmpeg): read from a loopback RTSP server, dropped when it dies, re-read after it restarts', { skip: rtspServerAvailable() }, async () => {
  await readDropReread('ffmpeg');
});

test('rtsp (gst-launch): the same through rtspsrc and the board\'s decoder', {
  skip: rtspServerAvailable() ?? gstElementsMissing('rtspsrc', 'rtph264depay', 'h264parse', 'avdec_h264'),
}, async () => {
  await readDropReread('gstreamer');
});
