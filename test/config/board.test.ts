/** Board profiles: every shipped one validates; a bad or unknown one is refused clearly. */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { listBoards, loadBoard } from '../../src/config/index.js';
import { readSensors } from '../../src/daemon/sensors.js';
import { withTempDir } from '../harness/index.js';

test('the shipped profiles all validate, including the required ones', async () => {
  const names = await listBoards();
  for (const required of ['generic-x86', 'generic-arm64', 'jetson-nano', 'jetson-xavier-nx', 'jetson-orin-nano']) {
    assert.ok(names.includes(required), `boards/${required}.json is missing`);
  }
  for (const name of names) {
    const board = await loadBoard(name);
    assert.equal(board.name, name);
    if (name.startsWith('jetson')) assert.equal(board.capture.launcher, 'gstreamer', `${name} decodes with NVDEC through GStreamer`);
  }
});

test('an unknown profile lists the known ones; a bad one names the file and key path', async () => {
  await assert.rejects(loadBoard('raspberry-pi-9'), /board profile "raspberry-pi-9" not found .*known profiles: .*generic-x86/);
  await withTempDir(async (dir) => {
    const good = JSON.parse(JSON.stringify(await loadBoard('generic-x86'))) as Record<string, unknown>;
    await writeFile(dir.file('x.json'), JSON.stringify({ ...good, name: 'x', memoryBudgetMb: 'lots', extra: 1 }));
    await assert.rejects(loadBoard('x', dir.path), (err: Error) => {
      assert.match(err.message, /x\.json: invalid board profile:/);
      assert.match(err.message, /memoryBudgetMb: Invalid input: expected number, received string; received "lots"/);
      assert.match(err.message, /extra: unknown key/);
      return true;
    });
  });
});

test('sensors: a file is read and scaled, a missing one reads null, `*` matches one level', async () => {
  await withTempDir(async (dir) => {
    // readSensors only accepts /sys paths from profiles, but reads any path it is given.
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir.file('hwmon', 'hwmon3'), { recursive: true });
    await writeFile(dir.file('temp'), '47250\n');
    await writeFile(dir.file('hwmon', 'hwmon3', 'in1_input'), '5000\n');
    await writeFile(dir.file('hwmon', 'hwmon3', 'curr1_input'), '1200\n');
    const readings = await readSensors({
      thermalZones: [
        { name: 'cpu', path: dir.file('temp') },
        { name: 'gone', path: dir.file('missing') },
      ],
      powerSensors: [{ name: 'vdd_in', voltagePath: dir.file('hwmon', 'hwmon*', 'in1_input'), currentPath: dir.file('hwmon', 'hwmon*', 'curr1_input') }],
    });
    assert.deepEqual(readings, { temperature_c: { cpu: 47.3, gone: null }, power_mw: { vdd_in: 6000 } });
  });
});
