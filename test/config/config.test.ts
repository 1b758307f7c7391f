/** The config file: defaults, every kind of bad input named by its key path, env overrides, runtime changes. */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { applyOverrides, ConfigError, ConfigStore, loadConfig, validateConfigText } from '../../src/config/index.js';
import { ConfigSchema, ScoringConfigSchema } from '../../src/config/schema.js';
import { isArrayAt, keysAt } from '../../src/config/shape.js';
import { formatKeyPath } from '../../src/util/key-path.js';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { tempDir, withSmallDisk, type TempDir } from '../harness/index.js';

const GOOD = `# a complete file
board: generic-x86
logLevel: debug
stateDir: state
cameras:
  - type: folder
    name: line1
    path: frames
    fps: 5
inference:
  model: bundle
  threads: 2
mqtt:
  url: mqtt://127.0.0.1:1884
  base: plant
  device: cell-7
scoring:
  threshold: 0.9
  startFrames: 3
  endFrames: 4
  snapshotOnEvent: false
telemetry:
  intervalS: 30
`;

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected the config to be refused');
}

let dir: TempDir;
before(async () => {
  dir = await tempDir();
});
after(async () => {
  await dir.remove();
});

describe('defaults', () => {
  test('no file: sample frames at 2 fps, the shipped bundle, the embedded broker', async () => {
    const { config, file } = await loadConfig(undefined, {});
    assert.equal(file, undefined);
    assert.deepEqual(config.cameras, [{ type: 'folder', name: 'samples', enabled: true, path: join(PACKAGE_ROOT, 'samples/frames'), fps: 2, loop: true, maxFileBytes: 128 * 2 ** 20 }]);
    assert.equal(config.inference.model, join(PACKAGE_ROOT, 'models/quantized/moead-mnv2-synth'));
    assert.equal(config.mqtt.url, undefined);
    assert.equal(config.board, 'generic-x86');
    assert.deepEqual(config.scoring, { cameraThresholds: {}, startFrames: 2, endFrames: 3, snapshotOnEvent: true, maxRegions: 4 });
  });

  test('an empty file is the defaults', () => {
    const { config } = validateConfigText('', join(dir.path, 'empty.yaml'), {});
    assert.equal(config.cameras[0]?.name, 'samples');
  });
});

describe('a good file', () => {
  test('parses, and relative paths are relative to the file', () => {
    const file = join(dir.path, 'etc', 'moead.yaml');
    const { config } = validateConfigText(GOOD, file, {});
    assert.equal(config.stateDir, join(dir.path, 'etc', 'state'));
    assert.equal(config.inference.model, join(dir.path, 'etc', 'bundle'));
    assert.deepEqual(config.cameras[0], { type: 'folder', name: 'line1', enabled: true, path: join(dir.path, 'etc', 'frames'), fps: 5, loop: true, maxFileBytes: 128 * 2 ** 20 });
    assert.equal(config.mqtt.device, 'cell-7');
    assert.deepEqual(config.scoring, { threshold: 0.9, cameraThresholds: {}, startFrames: 3, endFrames: 4, snapshotOnEvent: false, maxRegions: 4 });
    assert.equal(config.telemetry.intervalS, 30);
  });

  test('JSON works too', () => {
    const { config } = validateConfigText('{"scoring": {"endFrames": 9}}', join(dir.path, 'c.json'), {});
    assert.equal(config.scoring.endFrames, 9);
  });
});

describe('bad input names the file, the key path, the value and what was expected', () => {
  const file = '/etc/moead/config.yaml';
  test('a value out of range', () => {
    const [p] = problems(() => validateConfigText('cameras: [{type: folder, name: a, path: x, fps: 500}]', file, {}));
    assert.equal(p, 'cameras[0].fps: Too big: expected number to be <=120; received 500');
  });
  test('inference.framesAhead must leave at least one frame queued', () => {
    const [p] = problems(() => validateConfigText('inference: {framesAhead: 0}', file, {}));
    assert.equal(p, 'inference.framesAhead: Too small: expected number to be >=1; received 0');
    assert.deepEqual(problems(() => validateConfigText('scoring: {maxRegions: 17}', file, {})), ['scoring.maxRegions: Too big: expected number to be <=16; received 17']);
  });
  test('a wrong type', () => {
    assert.deepEqual(problems(() => validateConfigText('scoring: {startFrames: "three"}', file, {})), [
      'scoring.startFrames: Invalid input: expected number, received string; received "three"',
    ]);
  });
  test('an unknown key, at the top and nested, lists the allowed keys', () => {
    const list = problems(() => validateConfigText('mqtt: {urll: "mqtt://x"}\nfoo: 1', file, {}));
    assert.equal(list.length, 2);
    assert.match(list.find((l) => l.startsWith('mqtt.urll')) ?? '', /^mqtt\.urll: unknown key \(expected one of: url, base, device, /);
    assert.match(list.find((l) => l.startsWith('foo')) ?? '', /^foo: unknown key \(expected one of: version, board, logLevel, stateDir, cameras, inference, mqtt, scoring, telemetry, ota\)$/);
  });
  test('a raw GStreamer pipeline with an unbalanced quote, refused before it is ever run', () => {
    const [p] = problems(() => validateConfigText(`cameras: [{type: v4l2, name: a, pipeline: 'v4l2src ! video/x-raw,format="RGB'}]`, file, {}));
    assert.equal(p, 'cameras[0].pipeline: unbalanced double quote in pipeline: v4l2src ! video/x-raw,format="RGB; received "v4l2src ! video/x-raw,format=\\"RGB"');
    const { config } = validateConfigText(`cameras: [{type: v4l2, name: a, pipeline: 'v4l2src extra-controls="c,a=1" ! video/x-raw,format=RGB'}]`, file, {});
    assert.equal(config.cameras[0]?.type === 'v4l2' && config.cameras[0].pipeline, 'v4l2src extra-controls="c,a=1" ! video/x-raw,format=RGB');
  });
  test('a NUL in a pipeline, path or credential, refused before it is ever spawned', () => {
    const nul = 'expected no NUL character (a process argument or file path cannot hold one)';
    assert.deepEqual(problems(() => validateConfigText('cameras: [{type: v4l2, name: a, pipeline: "v4l2src\\0 ! fakesink"}]', file, {})), [
      `cameras[0].pipeline: ${nul}; received "v4l2src\\u0000 ! fakesink"`,
    ]);
    assert.deepEqual(
      problems(() =>
        validateConfigText(
          'cameras: [{type: folder, name: a, path: "f\\0"}, {type: file, name: b, path: "c.mp4\\0"}, {type: rtsp, name: c, url: "rtsp://x", username: "u\\0", password: "p\\0"}]',
          file,
          {},
        ),
      ),
      [
        `cameras[0].path: ${nul}; received "f\\u0000"`,
        `cameras[1].path: ${nul}; received "c.mp4\\u0000"`,
        `cameras[2].username: ${nul}; received a string (not shown: a credential)`,
        `cameras[2].password: ${nul}; received a string (not shown: a credential)`,
      ],
    );
    // Device paths and URLs were already held to patterns that leave NUL out.
    assert.match(problems(() => validateConfigText('cameras: [{type: v4l2, name: a, device: "/dev/video0\\0"}]', file, {}))[0] ?? '', /^cameras\[0\]\.device: expected a device path/);
    assert.match(problems(() => validateConfigText('cameras: [{type: http, name: a, url: "http://x\\0"}]', file, {}))[0] ?? '', /^cameras\[0\]\.url: expected an http:\/\//);
  });
  test('a config error names a credential but never shows it, nor the user-info of a URL', () => {
    const lines = problems(() =>
      validateConfigText(
        'mqtt: {url: "mqtt://broker:1883", username: 42, password: 31337}\ncameras: [{type: rtsp, name: a, url: "rtsq://cam:hunter2@10.0.0.9/s"}]',
        file,
        {},
      ),
    );
    assert.deepEqual(lines.filter((l) => l.startsWith('mqtt.')), [
      'mqtt.username: Invalid input: expected string, received number; received a number (not shown: a credential)',
      'mqtt.password: Invalid input: expected string, received number; received a number (not shown: a credential)',
    ]);
    const camera = lines.find((l) => l.startsWith('cameras[0].url')) ?? '';
    assert.match(camera, /rtsq:\/\/\*\*\*@10\.0\.0\.9/);
    for (const line of lines) assert.ok(!/31337|hunter2|42/.test(line), line);
  });
  test('a first reconnect delay longer than the longest, named by its field', () => {
    assert.deepEqual(problems(() => validateConfigText('cameras: [{type: rtsp, name: a, url: "rtsp://x", reconnect: {initialMs: 60000, maxMs: 10}}]', file, {})), [
      'cameras[0].reconnect.initialMs: expected at most reconnect.maxMs (10), which caps every delay, the first one too (initialMs is 1000 when not set); received 60000',
    ]);
    const { config } = validateConfigText('cameras: [{type: rtsp, name: a, url: "rtsp://x", reconnect: {initialMs: 500, maxMs: 500}}]', file, {});
    assert.deepEqual(config.cameras[0]?.type === 'rtsp' && config.cameras[0].reconnect, { initialMs: 500, maxMs: 500, jitter: 0.2 });
  });
  test('an unknown camera type', () => {
    const [p] = problems(() => validateConfigText('cameras: [{type: webcam, name: a}]', file, {}));
    assert.match(p ?? '', /^cameras\[0\]\.type: .*'folder'.*received "webcam"/);
  });
  test('duplicate camera names and a threshold for a camera that does not exist', () => {
    const list = problems(() =>
      validateConfigText('cameras: [{type: folder, name: a, path: x}, {type: folder, name: a, path: y}]\nscoring: {cameraThresholds: {b: 1}}', file, {}),
    );
    assert.deepEqual(list, [
      'cameras[1].name: expected a unique camera name, cameras[0] is also "a"; received "a"',
      'scoring.cameraThresholds.b: expected the name of a configured camera (a); received 1',
    ]);
  });
  test('broken YAML says where', () => {
    const [p] = problems(() => validateConfigText('cameras: [', file, {}));
    assert.match(p ?? '', /^not valid YAML\/JSON: .*line 1/);
  });
  test('a list instead of a mapping', () => {
    assert.deepEqual(problems(() => validateConfigText('- 1', file, {})), ['(root): expected a mapping of keys (board:, cameras:, mqtt: ...); received a list']);
  });
  test('the error message names the file', () => {
    assert.throws(() => validateConfigText('logLevel: loud', file, {}), (err: Error) => err.message.startsWith(`invalid config ${file}:\n  - logLevel: `));
  });
  test('EXPECTED FAILURE - an unknown key whose name is an inherited property plus a dot is named as unknown, not a TypeError', () => {
    // "constructor.x" made the allowed-keys lookup walk into Object.prototype.constructor.
    for (const text of ['"constructor.x": 1', '"__proto__.x": 1', 'mqtt:\n  "toString.y": 1']) {
      const lines = problems(() => validateConfigText(text, file, {}));
      assert.equal(lines.length, 1, text);
      assert.match(lines[0] ?? '', /^(constructor\.x|__proto__\.x|mqtt\.toString\.y): unknown key/, text);
    }
  });
  test('EXPECTED FAILURE - a YAML alias that refers to a node containing it is refused naming the key, not a TypeError', () => {
    for (const [text, where] of [['cameras: &c [*c]', 'cameras[0]'], ['mqtt: &m {url: *m}', 'mqtt.url'], ['scoring:\n  cameraThresholds: &t\n    a: {b: *t}', 'scoring.cameraThresholds.a.b']] as const) {
      const lines = problems(() => validateConfigText(text, file, {}));
      assert.equal(lines.length, 1, text);
      assert.ok(lines[0]?.startsWith(`${where}: `), `${text}: ${lines[0]}`);
      assert.match(lines[0] ?? '', /alias/);
    }
  });
  test('EXPECTED FAILURE - a value the YAML library would read otherwise than written (an unknown !tag) is refused naming the file and line, not warned about on stderr', () => {
    const lines = problems(() => validateConfigText('logLevel: !weird info', file, {}));
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', /^not read as written: Unresolved tag: !weird at line 1, column 11/);
    // An alias bomb is still refused as invalid YAML, before it is expanded.
    const bomb = 'a: &a [x, x, x, x, x, x, x, x, x]\n' + Array.from({ length: 9 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`).join('\n');
    assert.match(problems(() => validateConfigText(bomb, file, {}))[0] ?? '', /^not valid YAML\/JSON: .*alias/i);
  });
  test('a missing file', async () => {
    await assert.rejects(loadConfig(join(dir.path, 'nope.yaml'), {}), /invalid config .*nope\.yaml:\n {2}- file not found/);
  });
});

describe('environment overrides', () => {
  test('MOEAD_SECTION__KEY sets nested keys, case and underscores ignored, values JSON-parsed', async () => {
    const { config } = await loadConfig(undefined, {
      MOEAD_MQTT__URL: 'mqtt://broker:1883',
      MOEAD_MQTT__EMBEDDED_PORT: '0',
      MOEAD_LOG_LEVEL: 'warn',
      MOEAD_SCORING__SNAPSHOTONEVENT: 'false',
      MOEAD_TELEMETRY__INTERVAL_S: '2.5',
      MOEAD_CONFIG: '/not/a/config/key',
      MOEAD_SOMETHING_ELSE: 'not ours',
    });
    assert.equal(config.mqtt.url, 'mqtt://broker:1883');
    assert.equal(config.mqtt.embeddedPort, 0);
    assert.equal(config.logLevel, 'warn');
    assert.equal(config.scoring.snapshotOnEvent, false);
    assert.equal(config.telemetry.intervalS, 2.5);
  });
  test('overrides win over the file, array positions are numbers', () => {
    const { config } = validateConfigText(GOOD, join(dir.path, 'c.yaml'), { MOEAD_CAMERAS__0__FPS: '1', MOEAD_SCORING__THRESHOLD: '1.5' });
    assert.equal(config.cameras[0]?.type === 'folder' && config.cameras[0].fps, 1);
    assert.equal(config.scoring.threshold, 1.5);
  });
  test('paths set by a variable are relative to the working directory, those in the file to its folder', () => {
    const file = join(dir.path, 'etc', 'moead.yaml');
    const { config } = validateConfigText(GOOD, file, {
      MOEAD_INFERENCE__MODEL: 'env-bundle',
      MOEAD_MQTT__PASSWORD_FILE: 'env-secret',
      MOEAD_CAMERAS__0__FPS: '1',
    });
    assert.equal(config.inference.model, join(process.cwd(), 'env-bundle'));
    assert.equal(config.mqtt.passwordFile, join(process.cwd(), 'env-secret'));
    // Not set by a variable: still relative to the file.
    assert.equal(config.stateDir, join(dir.path, 'etc', 'state'));
    assert.equal(config.cameras[0]?.type === 'folder' && config.cameras[0].path, join(dir.path, 'etc', 'frames'));
    const whole = validateConfigText(GOOD, file, { MOEAD_CAMERAS: '[{"type":"folder","name":"a","path":"env-frames"}]' }).config;
    assert.equal(whole.cameras[0]?.type === 'folder' && whole.cameras[0].path, join(process.cwd(), 'env-frames'));
  });
  test('a bad value names the variable', async () => {
    await assert.rejects(loadConfig(undefined, { MOEAD_MQTT__EMBEDDED_PORT: '70000' }), (err: ConfigError) => {
      assert.deepEqual(err.problems, ['mqtt.embeddedPort (from MOEAD_MQTT__EMBEDDED_PORT): Too big: expected number to be <=65535; received 70000']);
      return true;
    });
  });
  test('a nested variable naming no key is an error, not ignored', async () => {
    await assert.rejects(loadConfig(undefined, { MOEAD_MQTT__URLL: 'x' }), /MOEAD_MQTT__URLL: URLL is not a key of mqtt \(expected one of: url, /);
  });
  test('a list position must be a number: a name there is an error naming the list', async () => {
    await assert.rejects(loadConfig(undefined, { MOEAD_CAMERAS__FIRST__FPS: '1' }), /MOEAD_CAMERAS__FIRST__FPS: FIRST is not a key of cameras/);
  });
  test('EXPECTED FAILURE - a huge list position is refused naming the variable, instead of a list of that length being validated', async () => {
    // MOEAD_CAMERAS__100000000__FPS made a sparse list of 1e8 entries and zod ran out of memory on it.
    await assert.rejects(loadConfig(undefined, { MOEAD_CAMERAS__100000000__FPS: '1' }), (err: ConfigError) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.problems.length, 1);
      assert.match(err.problems[0] ?? '', /^MOEAD_CAMERAS__100000000__FPS: position 100000000 of cameras is past /);
      return true;
    });
    // A position at the end of the list still appends an entry.
    const { config } = validateConfigText(GOOD, join(dir.path, 'c.yaml'), { MOEAD_CAMERAS__1: '{"type":"folder","name":"line2","path":"f2"}' });
    assert.deepEqual(config.cameras.map((c) => c.name), ['line1', 'line2']);
  });
  test('a list entry set whole from JSON may follow one built from single keys, whatever the order the overrides apply in', () => {
    // MOEAD_CAMERAS__2 (the shorter path) applies before the keys of entry 1; together they leave no hole.
    const { config } = validateConfigText(GOOD, join(dir.path, 'c.yaml'), {
      MOEAD_CAMERAS__1__TYPE: 'folder',
      MOEAD_CAMERAS__1__NAME: 'line2',
      MOEAD_CAMERAS__1__PATH: 'f2',
      MOEAD_CAMERAS__2: '{"type":"folder","name":"line3","path":"f3"}',
    });
    assert.deepEqual(config.cameras.map((c) => c.name), ['line1', 'line2', 'line3']);
    // A hole no override fills is still refused, naming the variable past it.
    assert.throws(() => validateConfigText(GOOD, join(dir.path, 'c.yaml'), { MOEAD_CAMERAS__1__NAME: 'line2', MOEAD_CAMERAS__3: '{"type":"folder","name":"line4","path":"f4"}' }), (err: ConfigError) => {
      assert.deepEqual(err.problems, ['MOEAD_CAMERAS__3: position 3 of cameras is past the end of the list (2 entries: positions 0..1 refine one, 2 adds one)']);
      return true;
    });
    // A file without cameras: there is nothing to refine, and the message says so plainly.
    assert.throws(() => validateConfigText('logLevel: info\n', join(dir.path, 'c.yaml'), { MOEAD_CAMERAS__1__FPS: '5' }), (err: ConfigError) => {
      assert.deepEqual(err.problems, ['MOEAD_CAMERAS__1__FPS: position 1 of cameras is past the end of the list (the list is empty: position 0 adds one)']);
      return true;
    });
  });
  test('keys of a map (camera names) are taken as written, not matched against the schema', () => {
    const { config } = validateConfigText(GOOD, join(dir.path, 'c.yaml'), { MOEAD_SCORING__CAMERA_THRESHOLDS__line1: '2.5' });
    assert.deepEqual(config.scoring.cameraThresholds, { line1: 2.5 });
  });
  test('a whole section set from JSON is applied before a variable that refines one of its keys, whatever their names', () => {
    // MOEAD_M_QTT__URL sorts before MOEAD_MQTT by name; by path length it comes after.
    const { config } = validateConfigText(GOOD, join(dir.path, 'c.yaml'), { MOEAD_M_QTT__URL: 'mqtt://b:1883', MOEAD_MQTT: '{"url":"mqtt://a:1883","device":"d2"}' });
    assert.deepEqual([config.mqtt.url, config.mqtt.device], ['mqtt://b:1883', 'd2']);
  });
  test('an override reaches into a section left empty in the file (YAML null), and builds a list before a position', () => {
    const { config } = validateConfigText('mqtt:\n', join(dir.path, 'c.yaml'), { MOEAD_MQTT__DEVICE: 'd3' });
    assert.equal(config.mqtt.device, 'd3');
    const file = { mqtt: { device: 'd1' } };
    const raw = applyOverrides(file, [{ variable: 'MOEAD_CAMERAS__0__FPS', path: ['cameras', 0, 'fps'], value: 1 }, { variable: 'MOEAD_MQTT__DEVICE', path: ['mqtt', 'device'], value: 'd2' }]);
    assert.deepEqual(raw, { mqtt: { device: 'd2' }, cameras: [{ fps: 1 }] });
    assert.deepEqual(file, { mqtt: { device: 'd1' } }, 'the parsed file itself is left as it was');
  });
});

describe('runtime changes', () => {
  test('reload: a valid edit applies live keys and lists restart-required ones; an invalid one is refused and the last good stays', async () => {
    const file = dir.file('live.yaml');
    await writeFile(file, GOOD);
    const store = new ConfigStore(await loadConfig(file, {}), {});
    const seen: number[] = [];
    store.onChange((next) => seen.push(next.scoring.startFrames));

    await writeFile(file, GOOD.replace('startFrames: 3', 'startFrames: 5').replace('base: plant', 'base: factory'));
    const ok = await store.reload();
    assert.deepEqual(ok, { ok: true, applied: ['scoring'], restartRequired: ['mqtt'] });
    assert.equal(store.current.scoring.startFrames, 5);
    assert.equal(store.current.mqtt.base, 'plant', 'restart-required keys keep their running value');
    assert.deepEqual(seen, [5]);

    await writeFile(file, GOOD.replace('startFrames: 3', 'startFrames: -1'));
    const bad = await store.reload();
    assert.equal(bad.ok, false);
    assert.match(bad.ok ? '' : bad.error, /scoring\.startFrames: Too small/);
    assert.equal(store.current.scoring.startFrames, 5, 'the last known good config keeps running');
  });

  test('EXPECTED FAILURE - a reload that finds the file empty (a save caught halfway) keeps the running config; {} still means all defaults', async () => {
    const file = dir.file('truncated.yaml');
    await writeFile(file, GOOD.replace('startFrames: 3', 'startFrames: 5'));
    const store = new ConfigStore(await loadConfig(file, {}), {});
    for (const empty of ['', '\n  \n']) {
      await writeFile(file, empty);
      const r = await store.reload();
      assert.equal(r.ok, false);
      assert.equal(r.ok ? '' : r.error, `${file}: the file is empty (caught in the middle of a save?); the running config stays. For a config of all defaults, write {}`);
      assert.equal(store.current.scoring.startFrames, 5);
    }
    await writeFile(file, '{}');
    assert.equal((await store.reload()).ok, true);
    assert.equal(store.current.scoring.startFrames, ScoringConfigSchema.parse({}).startFrames, 'an explicit {} is the defaults');
  });

  test('inside a partly live section, only the live keys apply', async () => {
    const file = dir.file('partly.yaml');
    await writeFile(file, GOOD);
    const store = new ConfigStore(await loadConfig(file, {}), {});
    await writeFile(file, GOOD.replace('intervalS: 30', 'intervalS: 5\n  prometheus: {enabled: true}'));
    assert.deepEqual(await store.reload(), { ok: true, applied: ['telemetry.intervalS'], restartRequired: ['telemetry.prometheus'] });
    assert.equal(store.current.telemetry.intervalS, 5);
    assert.equal(store.current.telemetry.prometheus.enabled, false, 'the exporter starts only at start-up');
  });

  test('set with persist validates before saving and keeps the rest of the file', async () => {
    const file = dir.file('persist.yaml');
    await writeFile(file, GOOD);
    const store = new ConfigStore(await loadConfig(file, {}), {});
    store.addCheck((c) => (c.scoring.threshold !== undefined && c.scoring.threshold < 0.5 ? [`scoring.threshold: below 0.5; received ${c.scoring.threshold}`] : []));

    const refused = await store.set(['scoring', 'threshold'], 0.1, { persist: true });
    assert.deepEqual(refused, { ok: false, error: `invalid config ${file}:\n  - scoring.threshold: below 0.5; received 0.1` });
    assert.equal(await readFile(file, 'utf8'), GOOD, 'a refused change is not saved');

    const invalid = await store.set(['scoring', 'threshold'], -2, { persist: true });
    assert.equal(invalid.ok, false);
    assert.equal(await readFile(file, 'utf8'), GOOD);

    // Without persist: in force, file untouched, relative paths still relative to the file.
    const live = await store.set(['scoring', 'threshold'], 0.75, { persist: false });
    assert.deepEqual(live, { ok: true, applied: ['scoring'], restartRequired: [], persisted: false });
    assert.equal(store.current.scoring.threshold, 0.75);
    assert.equal(await readFile(file, 'utf8'), GOOD);

    const saved = await store.set(['scoring', 'threshold'], 1.25, { persist: true });
    assert.deepEqual(saved, { ok: true, applied: ['scoring'], restartRequired: [], persisted: true });
    const text = await readFile(file, 'utf8');
    assert.match(text, /^# a complete file\n/, 'comments are kept');
    assert.match(text, /threshold: 1\.25/);
    assert.equal(store.current.scoring.threshold, 1.25);
  });

  test('EXPECTED FAILURE - set with persist while the file on disk is broken names the file and what is wrong there, and changes nothing', async () => {
    const file = dir.file('broken-on-disk.yaml');
    await writeFile(file, GOOD);
    const store = new ConfigStore(await loadConfig(file, {}), {});
    // Edited after start-up into something that does not parse, or where a key on the path is not a mapping.
    const cases: Array<[string, (string | number)[], RegExp]> = [
      ['cameras: [', ['scoring', 'threshold'], /not valid YAML\/JSON: .*line 1/],
      [GOOD.replace('scoring:\n', 'scoring: 5\nx:\n'), ['scoring', 'threshold'], /scoring: Invalid input: expected object/],
      ['scoring: [1, 2]\n', ['scoring', 'threshold'], /scoring: Invalid input: expected object, received array/],
      ['- 1\n', ['scoring', 'threshold'], /\(root\): expected a mapping/],
      [GOOD.replace('  threshold: 0.9', '  cameraThresholds: 3'), ['scoring', 'cameraThresholds', 'line1'], /scoring\.cameraThresholds: Invalid input: expected record/],
    ];
    for (const [text, path, why] of cases) {
      await writeFile(file, text);
      const change = await store.set(path, 0.5, { persist: true });
      assert.equal(change.ok, false, text);
      const error = change.ok ? '' : change.error;
      assert.ok(error.startsWith(`invalid config ${file}:`), `${JSON.stringify(text)}: ${error}`);
      assert.match(error, why, text);
      assert.equal(await readFile(file, 'utf8'), text, 'the file is left as it was');
      assert.equal(store.current.scoring.threshold, 0.9, 'the running config is unchanged');
      assert.deepEqual(store.current.scoring.cameraThresholds, {});
    }
  });

  test('EXPECTED FAILURE - set with persist on a full disk names the file, keeps it whole and changes nothing in force', (t) =>
    withSmallDisk(t, async (disk) => {
      const file = disk.file('moead.yaml');
      await writeFile(file, GOOD);
      const store = new ConfigStore(await loadConfig(file, {}), {});
      const before = store.current.scoring.threshold;
      disk.fill();
      const refused = await store.set(['scoring', 'threshold'], 1.25, { persist: true });
      assert.equal(refused.ok, false);
      assert.match(refused.ok ? '' : refused.error, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not saved, the running config is unchanged \\(ENOSPC: no space left on device`));
      assert.equal(await readFile(file, 'utf8'), GOOD);
      assert.equal(store.current.scoring.threshold, before);
      // Room again: the same change is saved.
      disk.free();
      assert.deepEqual(await store.set(['scoring', 'threshold'], 1.25, { persist: true }), { ok: true, applied: ['scoring'], restartRequired: [], persisted: true });
    }));

  test('set without a file lives in memory only', async () => {
    const store = new ConfigStore(await loadConfig(undefined, {}), {});
    const change = await store.set(['scoring', 'cameraThresholds', 'samples'], 2, { persist: true });
    assert.deepEqual(change, { ok: true, applied: ['scoring'], restartRequired: [], persisted: false });
    assert.equal(store.current.scoring.cameraThresholds.samples, 2);
    const reload = await store.reload();
    assert.equal(reload.ok, false);
  });

  test('a file edited on disk is reloaded by the watcher', async () => {
    const sub = dir.file('watched');
    await mkdir(sub);
    const file = join(sub, 'w.yaml');
    await writeFile(file, GOOD);
    const store = new ConfigStore(await loadConfig(file, {}), {});
    const changed = new Promise((resolve) => store.watchFile(resolve, 50));
    await writeFile(file, GOOD.replace('intervalS: 30', 'intervalS: 7'));
    assert.deepEqual(await changed, { ok: true, applied: ['telemetry.intervalS'], restartRequired: [] });
    assert.equal(store.current.telemetry.intervalS, 7);
    store.unwatch();
  });
});

describe('docs/config.md', () => {
  test('the full example is a valid config', async () => {
    const doc = await readFile(join(PACKAGE_ROOT, 'docs', 'config.md'), 'utf8');
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
    const example = blocks.at(-1) ?? '';
    assert.ok(example.includes('cameras:'), 'docs/config.md ends with a full yaml example');
    const { config } = validateConfigText(example, '/etc/moead/config.yaml', {});
    assert.deepEqual(config.cameras.map((c) => c.name), ['bench', 'line1']);
    assert.equal(config.scoring.cameraThresholds.line1, 0.9);
  });

  /** docs/config.md and the docs its reference points to for a section. */
  const readDocs = async (): Promise<Record<string, string>> =>
    Object.fromEntries(await Promise.all(['config', 'mqtt', 'cameras', 'ota'].map(async (name) => [name, await readFile(join(PACKAGE_ROOT, 'docs', `${name}.md`), 'utf8')] as const)));

  /** Every key path of the schema, camera types and nested sections included; list elements as 0. */
  function schemaKeyPaths(path: (string | number)[] = []): (string | number)[][] {
    const nested = isArrayAt(ConfigSchema, path) ? schemaKeyPaths([...path, 0]) : [];
    return [...nested, ...keysAt(ConfigSchema, path).flatMap((key) => [[...path, key], ...schemaKeyPaths([...path, key])])];
  }

  test('every key of the schema is named in the docs, so a key added without a word about it fails here', async () => {
    const text = Object.values(await readDocs()).join('\n');
    const yamlKeys = new Set([...text.matchAll(/```yaml\n([\s\S]*?)```/g)].flatMap((m) => [...(m[1] ?? '').matchAll(/^[ -]*([A-Za-z]+):/gm)].map((k) => k[1])));
    // Named = written as code, on its own or in a dotted path or a list of keys (`key`,
    // `mqtt.tls.key`, `{x, y}`), or set in one of the YAML examples.
    const named = (key: string) => yamlKeys.has(key) || new RegExp(`\`[^\`\n]*\\b${key}\\b[^\`\n]*\``).test(text);
    const missing = schemaKeyPaths().filter((path) => !named(String(path.at(-1)))).map((path) => formatKeyPath(path));
    assert.deepEqual(missing, [], 'keys no doc names (docs/config.md, mqtt.md, cameras.md, ota.md)');
  });

  test('the defaults in the reference tables are the schema\'s', async () => {
    const docs = await readDocs();
    const defaults = ConfigSchema.parse({}) as unknown as Record<string, Record<string, unknown>>;
    let checked = 0;
    // `| `key` | `default` | meaning |` rows under `inference:`, `scoring:`, `telemetry:` (config.md) and
    // `| `ota.key` | ... |` (ota.md); rows whose default is words (`the board's`, `512 MiB`) are left out.
    const sections: [string, string, string][] = [['config', 'inference', '`inference:`'], ['config', 'scoring', '`scoring:`'], ['config', 'telemetry', '`telemetry:`'], ['ota', 'ota', '## Config']];
    for (const [doc, section, heading] of sections) {
      const from = (docs[doc] ?? '').indexOf(heading);
      assert.ok(from >= 0, `docs/${doc}.md has no ${heading} table`);
      const table = (docs[doc] ?? '').slice(from).split('\n\n')[1] ?? '';
      for (const row of table.matchAll(/^\| (`[^|]+`) \| (`[^|]+`) \|/gm)) {
        const keys = [...(row[1] ?? '').matchAll(/`([^`]+)`/g)].map((m) => (m[1] ?? '').replace(/^ota\./, '').split('.'));
        const values = [...(row[2] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? '');
        assert.equal(keys.length, values.length, `docs/${doc}.md: ${row[0]}`);
        keys.forEach((key, i) => {
          const actual = key.reduce<unknown>((at, k) => (at as Record<string, unknown>)[k], defaults[section]);
          assert.equal(values[i], typeof actual === 'string' ? actual : JSON.stringify(actual), `docs/${doc}.md: default of ${section}.${key.join('.')}`);
          checked += 1;
        });
      }
    }
    assert.ok(checked >= 15, `only ${checked} documented defaults found: did a table's layout change?`);
  });
});
