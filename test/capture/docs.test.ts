import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { BoardCaptureSchema } from '../../src/capture/board.js';
import { CameraConfigSchema } from '../../src/capture/config.js';
import { buildChildCommand } from '../../src/capture/pipeline.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const doc = readFileSync(`${root}docs/cameras.md`, 'utf8');
const yamlBlocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parse(m[1]!) as { board?: string; cameras: unknown[] });

test('docs/cameras.md: every example config is valid, and the commands it shows are the ones run', () => {
  assert.ok(yamlBlocks.length >= 7, `only ${yamlBlocks.length} yaml examples found`);
  const env = { CAM_GATE_PASSWORD: 'pw', DOCK_USER: 'u', DOCK_PASSWORD: 'pw' };
  for (const block of yamlBlocks) {
    const profile = JSON.parse(readFileSync(`${root}boards/${block.board ?? 'generic-x86'}.json`, 'utf8')) as { capture: unknown };
    const board = BoardCaptureSchema.parse(profile.capture);
    for (const raw of block.cameras) {
      const camera = CameraConfigSchema.parse(raw);
      if (camera.type === 'folder') continue;
      const cmd = buildChildCommand(camera, board, env);
      if (camera.type === 'csi') {
        assert.ok(doc.replace(/\s+/g, ' ').includes(`${cmd.command} ${cmd.args.join(' ')}`), `the CSI command in the docs is not ${cmd.args.join(' ')}`);
      }
      if (camera.type === 'v4l2' && camera.pipeline === undefined) {
        assert.ok(doc.replace(/\s+/g, ' ').includes(cmd.args.slice(4, 14).join(' ')), 'the webcam command in the docs differs');
      }
      if (camera.type === 'rtsp') {
        const shown = cmd.args.join(' ').replace(/^-q rtspsrc location="[^"]*"/, '').replace('user-pw="pw"', 'user-pw="…"');
        assert.ok(doc.replace(/\s+/g, ' ').includes(shown), `the RTSP pipeline in the docs differs from${shown}`);
      }
    }
  }
});
