/**
 * systemd integration, with a real notification socket (AF_UNIX datagrams, bound by a child
 * process as systemd binds it): the addon's sdNotify, the notifier's protocol and watchdog,
 * the unit `moead-edge systemd-unit` writes (checked by systemd-analyze, then run the way
 * systemd would run it), and keep-alives withheld while inference is stuck.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { loadNative } from '../../src/native/binding.js';
import { systemdUnit, unitArgument } from '../../src/cli/systemd-unit.js';
import { createLogger } from '../../src/util/log.js';
import { serviceNotifier, type ServiceNotifier } from '../../src/util/sd-notify.js';
import { Mosquitto, MqttCollector, NotifySocket, repoPath, runCli, runProcess, spawnCli, spawnProcess, tempDir, type TempDir } from '../harness/index.js';
import { testBundle, testFrames, writeOneCameraConfig, writeStuckCameraConfig } from './fixtures.js';

let dir: TempDir;
before(async () => {
  dir = await tempDir();
});
after(async () => {
  await dir.remove();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the addon sends datagrams to a notification socket', () => {
  const { sdNotify } = loadNative();

  test('to a socket file and to an abstract name, byte for byte', async () => {
    for (const address of [dir.file('notify.sock'), `@moead-test-${process.pid}`]) {
      const socket = await NotifySocket.bind(address);
      try {
        sdNotify(address, 'READY=1\nSTATUS=naïve ✓');
        assert.equal((await socket.waitFor('READY')).text, 'READY=1\nSTATUS=naïve ✓');
      } finally {
        await socket.close();
      }
    }
  });

  test('bad arguments and an absent listener are errors that name them', () => {
    assert.throws(() => sdNotify('relative.sock', 'READY=1'), { name: 'RangeError', message: /socket must be an absolute path or an abstract name starting with @, not "relative.sock"/ });
    assert.throws(() => sdNotify(`/${'x'.repeat(120)}`, 'READY=1'), { name: 'RangeError', message: /is longer than 107 bytes/ });
    assert.throws(() => (sdNotify as (...a: unknown[]) => void)(7, 'READY=1'), { name: 'TypeError', message: /socket must be a string/ });
    assert.throws(() => (sdNotify as (...a: unknown[]) => void)('/tmp/x', undefined), { name: 'TypeError', message: /message must be a string/ });
    const absent = dir.file('nobody-listens.sock');
    assert.throws(() => sdNotify(absent, 'READY=1'), { message: new RegExp(`sending to ${absent}: No such file or directory`) });
  });
});

describe('serviceNotifier', () => {
  function notifier(env: NodeJS.ProcessEnv, transport = () => loadNative().sdNotify): { service: ServiceNotifier; log: string[] } {
    const log: string[] = [];
    const service = serviceNotifier({ env, pid: process.pid, transport, log: createLogger('systemd', 'debug', (l) => log.push(l)) });
    return { service, log };
  }

  test('outside systemd it does nothing and needs no addon', () => {
    const { service, log } = notifier({}, () => {
      throw new Error('the transport must not be resolved without NOTIFY_SOCKET');
    });
    assert.equal(service.active, false);
    service.ready('x');
    service.watch(() => undefined);
    service.close();
    assert.deepEqual(log, []);
  });

  test("reads systemd's variables, removes them from the environment, and refuses malformed ones by name", () => {
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/x.sock', WATCHDOG_USEC: '3000000', WATCHDOG_PID: String(process.pid), OTHER: 'kept' };
    const { service } = notifier(env, () => () => undefined);
    assert.equal(service.active, true);
    assert.equal(service.keepAliveMs, 1500);
    assert.deepEqual(env, { OTHER: 'kept' });

    assert.equal(notifier({ NOTIFY_SOCKET: '/run/x.sock', WATCHDOG_USEC: '3000000', WATCHDOG_PID: '1' }, () => () => undefined).service.keepAliveMs, undefined, "another process's watchdog");

    const bad = notifier({ NOTIFY_SOCKET: '/run/x.sock', WATCHDOG_USEC: '30s' });
    assert.equal(bad.service.active, false);
    assert.match(bad.log.join('\n'), /systemd's environment is malformed \(WATCHDOG_USEC: expected a whole number of microseconds\)/);

    const noAddon = notifier({ NOTIFY_SOCKET: '/run/x.sock' }, () => {
      throw new Error('native addon not found at /nowhere');
    });
    assert.equal(noAddon.service.active, false);
    assert.match(noAddon.log.join('\n'), /asked for notifications on \/run\/x\.sock, but they cannot be sent: native addon not found at \/nowhere/);
  });

  test('keep-alives only while healthy; the reason goes to STATUS; a lost socket is reported once and its return noted', async () => {
    const address = dir.file('watch.sock');
    const { service, log } = notifier({ NOTIFY_SOCKET: address, WATCHDOG_USEC: '60000' });
    assert.equal(service.keepAliveMs, 30);
    let problem: string | undefined;
    // Nobody listens yet: the first sends fail.
    service.watch(() => problem);
    await sleep(200);
    assert.equal(log.filter((l) => l.includes('notification not sent')).length, 1, log.join('\n'));
    const socket = await NotifySocket.bind(address);
    try {
      await socket.waitFor('WATCHDOG', '1');
      assert.match(log.join('\n'), /notifications reach .*watch\.sock again/);
      problem = 'inference stuck for camera cam1';
      await socket.waitFor('STATUS', 'unhealthy: inference stuck for camera cam1');
      const withheldFrom = socket.received.length;
      await sleep(300);
      assert.equal(socket.received.length, withheldFrom, 'no keep-alive (and no repeated STATUS) while unhealthy');
      problem = undefined;
      const back = await socket.waitFor('STATUS', 'healthy again');
      assert.equal(back.fields.WATCHDOG, '1');
      assert.match(log.join('\n'), /withholding systemd's keep-alive, so that systemd restarts the daemon: inference stuck for camera cam1/);
      service.stopping('stopping on SIGTERM');
      assert.deepEqual((await socket.waitFor('STOPPING')).fields, { STOPPING: '1', STATUS: 'stopping on SIGTERM' });
      service.close();
      // Datagrams sent before close() may still be on their way through the listener.
      await sleep(100);
      const closedAt = socket.received.length;
      await sleep(150);
      assert.equal(socket.received.length, closedAt, 'no keep-alives after close');
    } finally {
      service.close();
      await socket.close();
    }
  });
});

/** ExecStart=, Environment= and WorkingDirectory= of a unit, as systemd reads them. */
function serviceCommand(unit: string): { argv: string[]; env: Record<string, string>; cwd: string } {
  const unquote = (value: string): string[] =>
    [...value.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] ?? m[2] ?? '').replace(/\\(.)/g, '$1').replace(/%%/g, '%').replace(/\$\$/g, '$'));
  const settings = (key: string) => unit.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
  const env = Object.fromEntries(settings('Environment').flatMap(unquote).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  return { argv: unquote(settings('ExecStart')[0] ?? ''), env, cwd: settings('WorkingDirectory')[0] ?? '' };
}

describe('moead-edge systemd-unit', () => {
  let broker: Mosquitto;
  let config: string;
  before(async () => {
    broker = await Mosquitto.start();
    await testFrames(dir.file('frames'), {}, 4);
    config = await writeOneCameraConfig(dir.file('service.yaml'), {
      stateDir: dir.file('state'),
      camera: { name: 'cam1', path: dir.file('frames'), fps: 4 },
      model: (await testBundle(dir.path)).dir,
      broker: broker.url,
      device: 'unit',
    });
  });
  after(async () => {
    await broker?.teardown();
  });

  test('writes a unit systemd-analyze accepts: Type=notify, watchdog, through bin/moead-edge', async () => {
    const r = await runCli(['systemd-unit', '--config', config, '--user', 'moead']);
    assert.equal(r.code, 0, r.stderr);
    const unitFile = dir.file('moead-edge.service');
    await writeFile(unitFile, r.stdout);
    const verify = await runProcess('systemd-analyze', ['verify', unitFile], { timeoutMs: 30_000 });
    assert.equal(verify.code, 0, verify.stderr);
    // It warns about unknown keys and bad values on stderr and still exits 0.
    assert.doesNotMatch(verify.stderr, /moead-edge\.service/, verify.stderr);
    for (const line of ['Type=notify', 'NotifyAccess=main', 'WatchdogSec=30s', 'Restart=on-failure', 'User=moead', 'StateDirectory=moead-edge']) {
      assert.ok(r.stdout.split('\n').includes(line), `${line} in\n${r.stdout}`);
    }
    const { argv, env } = serviceCommand(r.stdout);
    assert.deepEqual(argv.slice(1), [repoPath('bin', 'moead-edge'), 'run', '--config', config]);
    assert.equal(env.MOEAD_NODE, process.execPath);
    assert.doesNotMatch((await runCli(['systemd-unit', '--watchdog', '0'])).stdout, /WatchdogSec/);
  });

  test('without the native addon: Type=simple, no watchdog, and a warning that says why', async () => {
    const missing = dir.file('no-such-addon.node');
    const r = await runCli(['systemd-unit', '--user', 'moead'], { env: { MOEAD_NATIVE_PATH: missing } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /cannot notify systemd from this install, so the unit uses Type=simple without a watchdog: native addon not found at .*no-such-addon\.node/);
    const lines = r.stdout.split('\n');
    assert.ok(lines.includes('Type=simple'), r.stdout);
    assert.ok(!lines.some((l) => /^(Type=notify|NotifyAccess=|WatchdogSec=)/.test(l)), r.stdout);
    const unitFile = dir.file('simple.service');
    await writeFile(unitFile, r.stdout);
    const verify = await runProcess('systemd-analyze', ['verify', unitFile], { timeoutMs: 30_000 });
    assert.equal(verify.code, 0, verify.stderr);
    assert.doesNotMatch(verify.stderr, /simple\.service/, verify.stderr);
  });

  test('bad input: a broken config, an account name, a watchdog period', async () => {
    const broken = dir.file('broken.yaml');
    await writeFile(broken, 'cameras: [{type: folder, name: cam1}]\n');
    const r = await runCli(['systemd-unit', '--config', broken]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /broken\.yaml/);
    assert.match(r.stderr, /cameras\[0\]\.path/);
    assert.equal(r.stdout, '', 'no unit for a broken config');
    const user = await runCli(['systemd-unit', '--user', 'root; rm -rf /']);
    assert.equal(user.code, 1);
    assert.match(user.stderr, /--user: expected an account name/);
    const watchdog = await runCli(['systemd-unit', '--watchdog', '1.5']);
    assert.equal(watchdog.code, 2);
    assert.match(watchdog.stderr, /--watchdog: expected whole seconds from 0 to 3600, received "1.5"/);
  });

  test('ExecStart arguments are quoted against systemd expansion', () => {
    assert.equal(unitArgument('/opt/my cams/50%/$HOME/"x"'), '"/opt/my cams/50%%/$$HOME/\\"x\\""');
    const unit = systemdUnit({ config: '/etc/moead edge/c.yaml', user: 'root', watchdogS: 5, root: '/opt/moead', node: '/usr/bin/node', version: '1.0.0', notify: true });
    assert.deepEqual(serviceCommand(unit).argv, ['/bin/sh', '/opt/moead/bin/moead-edge', 'run', '--config', '/etc/moead edge/c.yaml']);
    assert.throws(() => systemdUnit({ config: undefined, user: 'root', watchdogS: 5, root: '/opt/my moead', node: '/usr/bin/node', version: '1', notify: true }), /cannot take the path "\/opt\/my moead" in WorkingDirectory=/);
  });

  test('the unit runs as systemd would run it: READY once online, keep-alives, STOPPING on SIGTERM', async () => {
    const r = await runCli(['systemd-unit', '--config', config, '--watchdog', '1']);
    assert.equal(r.code, 0, r.stderr);
    const { argv, env, cwd } = serviceCommand(r.stdout);
    const socket = await NotifySocket.bind(`@moead-unit-${process.pid}`);
    // What systemd sets for a Type=notify service with WatchdogSec=1s.
    const daemon = spawnProcess(argv[0] ?? 'sh', argv.slice(1), { cwd, env: { ...env, NOTIFY_SOCKET: socket.address, WATCHDOG_USEC: '1000000' } });
    try {
      const ready = await socket.waitFor('READY', '1', 30_000);
      assert.equal(ready.fields.STATUS, '1 camera(s) publishing under moead/unit/');
      // READY comes after `online` reached the broker: a subscriber arriving now gets it retained.
      const late = await MqttCollector.connect(broker.url, 'moead/unit/availability');
      try {
        assert.equal((await late.waitFor('moead/unit/availability', { timeoutMs: 5000 })).text(), 'online');
      } finally {
        await late.close();
      }
      await daemon.waitForLine('systemd watchdog: a keep-alive every 500 ms while healthy');
      const keepAlives = () => socket.received.filter((n) => n.fields.WATCHDOG === '1').length;
      const deadline = Date.now() + 10_000;
      while (keepAlives() < 3 && Date.now() < deadline) await sleep(100);
      assert.ok(keepAlives() >= 3, JSON.stringify(socket.received));
      daemon.signal('SIGTERM');
      assert.equal((await socket.waitFor('STOPPING', '1')).fields.STATUS, 'stopping on SIGTERM');
      assert.equal((await daemon.waitForExit(20_000)).code, 0, daemon.output());
      assert.equal(socket.received.filter((n) => n.fields.READY !== undefined).length, 1);
    } finally {
      await daemon.stop();
      await socket.close();
    }
  });

  test('a model that stops answering gets no keep-alives until it answers again', async () => {
    // Each run of this model takes 0.3 s or more: stuck past the 0.1 s of
    // inference.stuckTimeoutS for most of it, answering in between.
    const file = await writeStuckCameraConfig(dir.path, { runMs: 300, stuckTimeoutS: 0.1, frames: dir.file('frames'), broker: broker.url, device: 'stuck-unit' });
    const socket = await NotifySocket.bind(dir.file('stuck.sock'));
    const daemon = spawnCli(['run', '--config', file], { env: { NOTIFY_SOCKET: socket.address, WATCHDOG_USEC: '40000' } });
    try {
      await socket.waitFor('READY', '1', 30_000);
      const unhealthy = 'unhealthy: inference stuck for camera cam (inference.stuckTimeoutS)';
      await socket.waitFor('STATUS', unhealthy);
      await socket.waitFor('STATUS', 'healthy again');
      const messages = socket.received;
      const from = messages.findIndex((n) => n.fields.STATUS === unhealthy);
      const until = messages.findIndex((n, i) => i > from && n.fields.STATUS === 'healthy again');
      assert.ok(from >= 0 && until > from, JSON.stringify(messages.map((n) => n.text)));
      assert.deepEqual(messages.slice(from + 1, until), [], 'nothing between the unhealthy STATUS and the return');
      await daemon.waitForLine(/withholding systemd's keep-alive, so that systemd restarts the daemon: inference stuck for camera cam/);
      daemon.signal('SIGTERM');
      assert.equal((await daemon.waitForExit(30_000)).code, 0, daemon.output());
    } finally {
      await daemon.stop();
      await socket.close();
    }
  });
});
