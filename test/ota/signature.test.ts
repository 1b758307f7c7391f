/** Bundle signatures: Ed25519 over manifest.json's bytes, trusted keys from the config only. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { generateSigningKey, parseSignatureFile, signManifest, verifyManifest } from '../../src/ota/signature.js';

const manifest = Buffer.from('{"name":"m","version":"1.0.0"}\n');

describe('bundle signatures', () => {
  const fleet = generateSigningKey();
  const other = generateSigningKey();

  test('a signature by a trusted key verifies; the file round-trips through its schema', () => {
    const signature = signManifest(manifest, fleet.privatePem);
    assert.equal(signature.key, fleet.publicKey);
    assert.match(fleet.publicKey, /^[A-Za-z0-9+/]{43}=$/);
    verifyManifest(manifest, parseSignatureFile(JSON.stringify(signature)), [other.publicKey, fleet.publicKey]);
  });

  test('one changed byte, another signer, an untrusted key and no trusted key are refused by name', () => {
    const signature = signManifest(manifest, fleet.privatePem);
    const altered = Buffer.from(manifest);
    altered[5] = (altered[5] ?? 0) ^ 1;
    assert.throws(() => verifyManifest(altered, signature, [fleet.publicKey]), /does not match manifest\.json \(altered after signing, or signed by another key\)/);
    // The file claims the fleet key, but another key made the signature.
    const forged = { ...signManifest(manifest, other.privatePem), key: fleet.publicKey };
    assert.throws(() => verifyManifest(manifest, forged, [fleet.publicKey]), /does not match manifest\.json/);
    assert.throws(() => verifyManifest(manifest, signManifest(manifest, other.privatePem), [fleet.publicKey]), new RegExp(`signed by key ${other.publicKey.replace(/[+/]/g, '\\$&')}, which is not in ota\\.trustedKeys`));
    assert.throws(() => verifyManifest(manifest, signature, []), /ota\.trustedKeys is empty/);
  });

  test('malformed signature files name what is wrong', () => {
    assert.throws(() => parseSignatureFile('{not json'), /manifest\.sig is not valid JSON/);
    const good = signManifest(manifest, fleet.privatePem);
    assert.throws(() => parseSignatureFile(JSON.stringify({ ...good, signature: 'c2hvcnQ=' })), /manifest\.sig: signature: expected base64 of a 64-byte Ed25519 signature/);
    assert.throws(() => parseSignatureFile(JSON.stringify({ ...good, key: 'abc' })), /manifest\.sig: key: expected an Ed25519 public key/);
    assert.throws(() => parseSignatureFile(JSON.stringify({ ...good, format: 'v0' })), /manifest\.sig: format/);
    assert.throws(() => parseSignatureFile(JSON.stringify({ ...good, extra: 1 })), /manifest\.sig: \(root\)/);
    // The whole field must be the encoding: a well-formed value with text before or after it is
    // refused here, not later by the crypto library with a message that names no field.
    for (const [field, value] of [
      ['key', `AAAA${good.key}`],
      ['key', `${good.key}AAAA`],
      ['signature', `AAAA${good.signature}`],
      ['signature', `${good.signature}AAAA`],
    ] as const) {
      assert.throws(() => parseSignatureFile(JSON.stringify({ ...good, [field]: value })), new RegExp(`manifest\\.sig: ${field}: expected`), `${field}: ${value}`);
    }
  });

  test('signing refuses a key that is not Ed25519', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const rsa = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    assert.throws(() => signManifest(manifest, rsa), /the signing key is ec, expected ed25519/);
  });

  test('a malformed trusted key in the config is refused naming its key path', () => {
    assert.throws(() => validateConfig({ ota: { trustedKeys: [fleet.publicKey, 'not-a-key'] } }, { source: 'test.yaml', baseDir: '.' }), /ota\.trustedKeys\[1\].*expected an Ed25519 public key/);
  });
});
