/**
 * mqtts against a real Mosquitto with certificates this test makes with the openssl CLI:
 * server certificate from a test CA, client certificates (mutual TLS), a password file.
 * Certificates valid only from ten years on, or expired, are made by openssl under a stepped
 * wall clock (libfaketime): what a device whose own clock is that far off sees.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { createFleetLink, type FleetLinkHandle } from '../../src/mqtt/index.js';
import { Mosquitto, MqttCollector, tempDir, WallClock, type TempDir } from '../harness/index.js';
import { readableByBroker, score, testConfig, until } from './helpers.js';

let dir: TempDir;
let broker: Mosquitto;
/** Runs openssl in the test folder; `env` (a stepped clock) is added to this process's environment. */
const openssl = (args: string[], env: Record<string, string> = {}): void => {
  execFileSync('openssl', args, { cwd: dir.path, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
};

/**
 * A P-256 key and a certificate for `cn` signed by `ca` (or self-signed when ca is undefined),
 * valid for two days from when openssl's clock (`env`) says it is signed.
 */
function makeCert(name: string, cn: string, ca?: string, env?: Record<string, string>): void {
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`];
  if (!ca) {
    openssl(['req', '-x509', ...key, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`], env);
    return;
  }
  openssl(['req', ...key, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], env);
  writeFileSync(dir.file(`${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], env);
}

/** The broker's settings of this file, its server certificate `server` (name of a makeCert). */
const brokerConfig = (server: string): string[] => [
  `cafile ${dir.file('ca.crt')}`,
  `certfile ${dir.file(`${server}.crt`)}`,
  `keyfile ${dir.file(`${server}.key`)}`,
  'require_certificate true',
  'allow_anonymous false',
  `password_file ${dir.file('passwd')}`,
];

before(async () => {
  dir = await tempDir('moead-tls-');
  makeCert('ca', 'moead test CA');
  makeCert('server', '127.0.0.1', 'ca');
  makeCert('client', 'dev1', 'ca');
  makeCert('other-ca', 'someone else');
  execFileSync('mosquitto_passwd', ['-b', '-c', dir.file('passwd'), 'dev1', 's3cret']);
  writeFileSync(dir.file('password.txt'), 's3cret\n');
  writeFileSync(dir.file('wrong-password.txt'), 'guess\n');
  readableByBroker(dir.path);
  broker = await Mosquitto.start({ extraConfig: brokerConfig('server') });
});

after(async () => {
  await broker?.teardown();
  await dir?.remove();
});

const tlsUrl = (on = broker): string => `mqtts://127.0.0.1:${on.port}`;
const tlsConfig = (over: Record<string, unknown> = {}, on = broker) =>
  testConfig(tlsUrl(on), {
    username: 'dev1',
    passwordFile: dir.file('password.txt'),
    tls: { ca: dir.file('ca.crt'), cert: dir.file('client.crt'), key: dir.file('client.key') },
    ...over,
  });

async function withLink(config: ReturnType<typeof testConfig>, fn: (link: FleetLinkHandle) => Promise<void>): Promise<void> {
  const state = await tempDir('moead-tls-state-');
  const link = createFleetLink(config, { stateDir: state.path });
  try {
    await fn(link);
  } finally {
    await link.stop();
    await state.remove();
  }
}

test('mqtts with a CA, a client certificate and a password file publishes', async () => {
  const w = await MqttCollector.connect(tlsUrl(), 'moead/dev1/#', {
    ca: readFileSync(dir.file('ca.crt')), cert: readFileSync(dir.file('client.crt')), key: readFileSync(dir.file('client.key')),
    username: 'dev1', password: 's3cret',
  });
  try {
    await withLink(tlsConfig(), async (link) => {
      await link.start();
      assert.equal(link.connected, true, link.lastError);
      await link.announceOnline();
      await link.publishScore('cam1', score(0));
      await w.waitFor('moead/dev1/cam1/score');
    });
  } finally {
    await w.close();
  }
});

test('the same over MQTT 3.1.1', async () => {
  await withLink(tlsConfig({ protocolVersion: 4, clientId: 'dev1-v4' }), async (link) => {
    await link.start();
    assert.equal(link.connected, true, link.lastError);
  });
});

test('EXPECTED FAILURE - a broker certificate from another CA is refused with a clear error', async () => {
  await withLink(tlsConfig({ tls: { ca: dir.file('other-ca.crt'), cert: dir.file('client.crt'), key: dir.file('client.key') } }), async (link) => {
    await link.start();
    assert.equal(link.connected, false);
    assert.match(link.lastError ?? '', /^TLS: the broker's certificate was refused \(\w+: .+\); check mqtt\.tls\.ca/);
  });
});

test('EXPECTED FAILURE - a wrong password is refused, naming the keys to check', async () => {
  await withLink(tlsConfig({ passwordFile: dir.file('wrong-password.txt') }), async (link) => {
    await link.start();
    await until(() => link.lastError !== undefined, 5000, 'the refusal');
    assert.equal(link.connected, false);
    assert.match(link.lastError ?? '', /broker refused the connection \(CONNACK \d+: .+\); check mqtt\.username\/password/);
  });
});

test('EXPECTED FAILURE - without a client certificate the handshake fails', async () => {
  await withLink(tlsConfig({ tls: { ca: dir.file('ca.crt') } }), async (link) => {
    await link.start();
    assert.equal(link.connected, false);
    assert.ok(link.lastError, 'a reason is given');
  });
});

test('EXPECTED FAILURE - an unreadable CA file stops start() naming the key and path', async () => {
  const state = await tempDir('moead-tls-state-');
  const link = createFleetLink(tlsConfig({ tls: { ca: dir.file('missing.crt') } }), { stateDir: state.path });
  try {
    await assert.rejects(link.start(), new RegExp(`mqtt\\.tls\\.ca: cannot read ${dir.file('missing.crt').replace(/[.]/g, '\\.')}: ENOENT`));
  } finally {
    await state.remove();
  }
});

/**
 * A device without a battery-backed RTC boots at 1970 or at its last saved time, and NTP may
 * later set it years ahead: the broker's certificate is then outside its validity by the
 * device's clock. The error must point at the clock, showing what it reads, not at the CA
 * file or the client key.
 */
for (const c of [
  { offset: '+3650d', what: 'not valid yet', expected: /^TLS: the broker's certificate \(or its CA's\) is not valid yet by this device's clock, which reads \d{4}-\d\d-\d\dT[\d:.]+Z; the clock is likely behind .*set it \(timedatectl, NTP\)/ },
  { offset: '-10d', what: 'expired', expected: /^TLS: the broker's certificate \(or its CA's\) has expired by this device's clock, which reads \d{4}-\d\d-\d\dT[\d:.]+Z; renew it on the broker, or, if that date is wrong, set the clock/ },
]) {
  test(`EXPECTED FAILURE - a broker certificate ${c.what} by this device's clock is refused with an error that names the clock and its reading`, async () => {
    const clock = await WallClock.create(dir.file(`openssl-${c.what}.time`));
    await clock.set(c.offset);
    const name = `server-${c.what.replace(/ /g, '-')}`;
    makeCert(name, '127.0.0.1', 'ca', clock.env());
    const dated = await Mosquitto.start({ extraConfig: brokerConfig(name) });
    try {
      await withLink(tlsConfig({}, dated), async (link) => {
        await link.start();
        assert.equal(link.connected, false);
        assert.match(link.lastError ?? '', c.expected);
      });
    } finally {
      await dated.teardown();
    }
  });
}
