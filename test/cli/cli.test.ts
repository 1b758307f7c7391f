/** The `moead-edge` command line as a user runs it: exit codes, messages, output format. */
import assert from 'node:assert/strict';
import { access, readFile, writeFile, readdir, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ManifestSchema } from '../../src/bundle/manifest.js';
import { DAEMON_NODE_FLAGS } from '../../src/cli/node-flags.js';
import { RegionSchema } from '../../src/mqtt/topics.js';
import { allocatorFromMaps } from '../../src/util/allocator.js';
import { DAEMON_NODE_SCRIPT, repoPath, runCli, runProcess, tempDir, type CliResult, type TempDir } from '../harness/index.js';
import { CORRUPT_PNG, testBundle, testFrames } from '../daemon/fixtures.js';

let dir: TempDir;
let bundle: string;
before(async () => {
  dir = await tempDir();
  bundle = (await testBundle(dir.path)).dir;
});
after(async () => {
  await dir.remove();
});

describe('scripts/daemon-node.sh (what npm start and npm run bench run)', () => {
  /** Runs a one-line script through the launcher; it prints Node's flags and its allocator. */
  async function launch(env: Record<string, string> = {}): Promise<CliResult> {
    const probe = join(dir.path, 'probe.mjs');
    await writeFile(probe, "import { readFileSync } from 'node:fs';\n" +
      "console.log(JSON.stringify({ argv: process.execArgv, arenas: process.env.MALLOC_ARENA_MAX ?? null, maps: readFileSync('/proc/self/maps', 'utf8') }));\n");
    return runProcess('sh', [DAEMON_NODE_SCRIPT, probe], { env: { MOEAD_NODE: process.execPath, ...env }, timeoutMs: 30_000 });
  }

  test('package.json starts the daemon, the benchmarks and the moead-edge bin through it', async () => {
    const pkg = JSON.parse(await readFile(repoPath('package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string>; version: string };
    assert.equal(pkg.scripts.start, 'sh scripts/daemon-node.sh dist/src/cli/main.js run');
    assert.equal(pkg.scripts.bench, 'sh scripts/daemon-node.sh dist/bench/run.js');
    assert.equal(pkg.bin['moead-edge'], 'bin/moead-edge');
    assert.match(await readFile(repoPath('bin/moead-edge'), 'utf8'), /exec sh "\$root\/scripts\/daemon-node\.sh" "\$root\/dist\/src\/cli\/main\.js"/);
    // npm links the bin from node_modules/.bin (or npx's cache): it must find the package through the link.
    const link = join(dir.path, 'moead-edge');
    await symlink(repoPath('bin/moead-edge'), link);
    const run = await runProcess(link, ['--version'], { env: { MOEAD_NODE: process.execPath } });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), pkg.version);
  });

  test('passes the daemon flags (src/cli/node-flags.ts) and keeps the C library\'s malloc by default, with two arenas', async () => {
    const run = await launch({ MALLOC_ARENA_MAX: '' });
    assert.equal(run.code, 0, run.stderr);
    const { argv, arenas, maps } = JSON.parse(run.stdout) as { argv: string[]; arenas: string | null; maps: string };
    for (const flag of DAEMON_NODE_FLAGS) assert.ok(argv.includes(flag), `node ran without ${flag}: ${argv.join(' ')}`);
    assert.equal(allocatorFromMaps(maps), 'system');
    assert.equal(arenas, '2');
    const own = await launch({ MALLOC_ARENA_MAX: '4' });
    assert.equal((JSON.parse(own.stdout) as { arenas: string | null }).arenas, '4', 'a value the environment sets is kept');
  });

  test('MOEAD_MALLOC=jemalloc preloads jemalloc, or says it is not installed', async () => {
    const jemalloc = await installedJemalloc();
    const run = await launch({ MOEAD_MALLOC: 'jemalloc' });
    if (jemalloc) {
      assert.equal(run.code, 0, run.stderr);
      assert.equal(allocatorFromMaps((JSON.parse(run.stdout) as { maps: string }).maps), 'jemalloc', jemalloc);
    } else {
      assert.equal(run.code, 2);
      assert.match(run.stderr, /MOEAD_MALLOC=jemalloc, but no libjemalloc\.so\.2 was found/);
    }
  });

  test('a wrong MOEAD_MALLOC is an error that names it', async () => {
    const run = await launch({ MOEAD_MALLOC: 'tcmalloc' });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /MOEAD_MALLOC must be 'system' or 'jemalloc', not 'tcmalloc'/);
  });
});

/** The jemalloc library the launcher looks for, if this machine has one. */
async function installedJemalloc(): Promise<string | undefined> {
  const dirs = ['/usr/lib64', '/usr/lib', '/usr/local/lib'];
  for (const entry of await readdir('/usr/lib').catch(() => [] as string[])) if (entry.endsWith('-linux-gnu')) dirs.unshift(join('/usr/lib', entry));
  for (const d of dirs) {
    const lib = join(d, 'libjemalloc.so.2');
    if (await access(lib).then(() => true, () => false)) return lib;
  }
  return undefined;
}

describe('usage', () => {
  test('no command or an unknown one: usage and exit 2', async () => {
    const none = await runCli([]);
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stdout, /^usage: moead-edge <command>/);
    const unknown = await runCli(['frobnicate']);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    const badFlag = await runCli(['score', '--nope']);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /Unknown option '--nope'[\s\S]*usage: moead-edge score/);
  });
  test('`moead-edge <command> --help` shows each command\'s options, as the usage promises (train: below)', async () => {
    for (const command of ['run', 'config', 'score', 'calibrate', 'systemd-unit', 'keygen', 'sign']) {
      const r = await runCli([command, '--help']);
      assert.equal(r.code, 0, `${command} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^usage: moead-edge ${command}\\b`), `${command} --help`);
    }
  });
  test('--version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await runCli(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), pkg.version);
  });
});

describe('config check and refusing to start', () => {
  test('a valid file: exit 0', async () => {
    const file = dir.file('good.yaml');
    await writeFile(file, `board: jetson-orin-nano\nscoring: {startFrames: 3}\ninference: {model: ${bundle}}\n`);
    const r = await runCli(['config', 'check', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /good\.yaml: valid \(1 camera\(s\), board jetson-orin-nano, embedded broker\)/);
  });
  test('--print shows the whole config with credentials and URL user-info as ***', async () => {
    const file = dir.file('secrets.yaml');
    await writeFile(file, `inference: {model: ${bundle}}\nmqtt: {url: "mqtts://fleet:pw1@broker:8883", username: fleet, password: s3cret}\ncameras: [{type: rtsp, name: c, url: "rtsp://cam:pw2@10.0.0.9/s", password: pw3}]\n`);
    const r = await runCli(['config', 'check', file, '--print']);
    assert.equal(r.code, 0, r.stderr);
    const printed = JSON.parse(r.stdout) as { mqtt: { url: string; username: string; password: string; tls?: unknown }; cameras: { url: string; password: string }[] };
    assert.deepEqual([printed.mqtt.url, printed.mqtt.username, printed.mqtt.password], ['mqtts://***@broker:8883', '***', '***']);
    assert.deepEqual([printed.cameras[0]?.url, printed.cameras[0]?.password], ['rtsp://***@10.0.0.9/s', '***']);
    assert.doesNotMatch(r.stdout + r.stderr, /pw1|pw2|pw3|s3cret/);
    assert.match(r.stderr, /broker mqtts:\/\/\*\*\*@broker:8883\)/);
  });
  test('thresholds are checked against the bundle; a missing bundle is named', async () => {
    const manifest = ManifestSchema.parse(JSON.parse(await readFile(`${bundle}/manifest.json`, 'utf8')));
    const low = manifest.threshold.good_median / 2;
    const file = dir.file('threshold.yaml');
    await writeFile(file, `inference: {model: ${bundle}}\nscoring: {cameraThresholds: {samples: ${low}}}\n`);
    const r = await runCli(['config', 'check', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`- scoring\\.cameraThresholds\\.samples: threshold ${low} for camera samples must be above the model's median good score`));
    await writeFile(file, `inference: {model: ${dir.file('no-bundle')}}\n`);
    const missing = await runCli(['config', 'check', file]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /- inference\.model: no bundle manifest at .*no-bundle\/manifest\.json/);
  });
  test('an invalid file: exit 1, every problem with its key path', async () => {
    const file = dir.file('bad.yaml');
    await writeFile(file, 'scoring: {startFrames: 0}\nmqtt: {urll: x}\n');
    const r = await runCli(['config', 'check', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`invalid config ${file.replace(/[.]/g, '\\.')}:`));
    assert.match(r.stderr, /- scoring\.startFrames: Too small: expected number to be >=1; received 0/);
    assert.match(r.stderr, /- mqtt\.urll: unknown key/);
  });
  test('an unknown board profile is a config error', async () => {
    const file = dir.file('board.yaml');
    await writeFile(file, 'board: toaster\n');
    const r = await runCli(['config', 'check', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /board: board profile "toaster" not found/);
  });
  test('a bad environment override names the variable', async () => {
    const file = dir.file('env.yaml');
    await writeFile(file, `inference: {model: ${bundle}}\n`);
    const r = await runCli(['config', 'check', file], { env: { MOEAD_SCORING__END_FRAMES: '"many"' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /scoring\.endFrames \(from MOEAD_SCORING__END_FRAMES\): Invalid input: expected number, received string; received "many"/);
  });
  test('missing FILE: exit 2; missing file on disk: exit 1', async () => {
    assert.equal((await runCli(['config', 'check'])).code, 2);
    const r = await runCli(['config', 'check', dir.file('absent.yaml')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /absent\.yaml:\n {2}- file not found/);
  });
  test('run refuses to start on a bad config, naming the key path', async () => {
    const file = dir.file('run-bad.yaml');
    await writeFile(file, 'cameras: [{type: folder, name: "bad name", path: x}]\n');
    const r = await runCli(['run', '--config', file], { timeoutMs: 15_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refusing to start: invalid config .*run-bad\.yaml:\n {2}- cameras\[0\]\.name: expected \[a-zA-Z0-9_-\]/);
  });
});

describe('score and calibrate', () => {
  let frames: string;
  let images: string[];
  before(async () => {
    frames = dir.file('frames');
    images = (await testFrames(frames, { 'zz-corrupt.png': CORRUPT_PNG }, 4)).map((n) => `${frames}/${n}`);
  });

  test('one JSON line per image; an unreadable one is reported, the rest still scored, exit 1', async () => {
    const heatmaps = dir.file('heatmaps');
    const r = await runCli(['score', '--model', bundle, '--json', '--heatmaps', heatmaps, ...images]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, images.length);
    const good = lines.filter((l) => !('error' in l));
    assert.equal(good.length, images.length - 1);
    for (const line of good) {
      assert.equal(line.anomalous, (line.score as number) >= (line.threshold as number));
      // Where, for an anomalous image only (as in the daemon's score messages).
      assert.deepEqual(Object.keys(line), ['file', 'score', 'normalized', 'threshold', 'anomalous', ...(line.anomalous ? ['regions'] : [])]);
      if (line.anomalous) RegionSchema.array().min(1).max(4).parse(line.regions);
    }
    const bad = lines.find((l) => 'error' in l);
    assert.equal(bad?.file, `${frames}/zz-corrupt.png`);
    assert.match(r.stderr, /zz-corrupt\.png: cannot decode image/);
    assert.match(r.stderr, /1 of 5 image\(s\) could not be scored/);
    const written = (await readdir(heatmaps)).sort();
    assert.equal(written.length, images.length - 1);
    assert.ok(written.every((n) => n.endsWith('.jpg')));
    const jpeg = await readFile(`${heatmaps}/${written[0]}`);
    assert.deepEqual([...jpeg.subarray(0, 2)], [0xff, 0xd8], 'a JPEG');
  });

  test('all readable: exit 0, plain text output', async () => {
    const r = await runCli(['score', '--model', bundle, ...images.slice(0, 2)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, 2);
    assert.match(r.stdout, /^(ANOMALOUS|ok {7}) {2}score \d+\.\d{5} {2}normalized \d\.\d{3} {2}\//);
  });

  test('calibrate: a threshold from good images, written to a manifest copy and a config', async () => {
    const good = dir.file('good');
    await testFrames(good, { 'broken.png': CORRUPT_PNG }, 4);
    const out = dir.file('calibrated', 'manifest.json');
    await mkdir(dir.file('calibrated'));
    const config = dir.file('cal.yaml');
    await writeFile(config, '# keep me\nscoring: {startFrames: 2}\n');
    const r = await runCli(['calibrate', '--model', bundle, '--good', good, '--out', out, '--config', config, '--quantile', '0.9', '--margin', '0.2']);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { value: number; good_median: number; quantile: number; margin: number; images: number; unreadable: number };
    assert.equal(result.images, 4);
    assert.equal(result.unreadable, 1);
    assert.equal(result.quantile, 0.9);
    assert.ok(result.value > result.good_median);
    const manifest = ManifestSchema.parse(JSON.parse(await readFile(out, 'utf8')));
    assert.equal(manifest.threshold.value, result.value);
    const text = await readFile(config, 'utf8');
    assert.match(text, /^# keep me\n/);
    assert.match(text, new RegExp(`threshold: ${String(result.value).replace('.', '\\.')}`));
  });

  test('calibrate with bad options: exit 2 naming the option', async () => {
    const r = await runCli(['calibrate', '--model', bundle, '--good', frames, '--quantile', '7']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--quantile: expected a number in \[0\.5, 1\], received "7"/);
    // Below the median the rule has no meaning: refused before any image is scored, not after.
    const low = await runCli(['calibrate', '--model', bundle, '--good', frames, '--quantile', '0.3']);
    assert.equal(low.code, 2, low.stderr);
    assert.match(low.stderr, /--quantile: expected a number in \[0\.5, 1\], received "0\.3"/);
  });
});

describe('train', () => {
  test('forwards to the Python toolchain with its output and exit code', async () => {
    const help = await runCli(['train', '--help'], { timeoutMs: 120_000 });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /usage: moead_edge train/);
    // argparse's own usage error (exit 2) comes back unchanged.
    const bad = await runCli(['train', '--no-such-option'], { timeoutMs: 120_000 });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unrecognized arguments: --no-such-option|required/);
  });

  test('relative --data and --out paths are the caller\'s, as for every other command (docs/ota.md trains into a folder that `sign` then reads)', async () => {
    // An empty folder next to the caller: found, and refused for its layout. Resolved against
    // training/ instead, it "does not exist", and --out would land inside training/.
    const cwd = join(dir.path, 'caller');
    await mkdir(join(cwd, 'my-data'), { recursive: true });
    const r = await runCli(['train', '--data', 'my-data', '--out', 'my-bundle', '--quiet'], { cwd, timeoutMs: 120_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.doesNotMatch(r.stderr, /does not exist/);
    assert.match(r.stderr, /my-data: not an MVTec-AD layout/);
  });
});
