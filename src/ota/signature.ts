/**
 * Bundle signatures: Ed25519 over the exact bytes of manifest.json, kept beside it in
 * manifest.sig. The manifest holds the size and sha256 of the model (and of the reference
 * frames), so one signature covers every file the daemon runs.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { formatKeyPath } from '../util/key-path.js';

export const SIGNATURE_FILE = 'manifest.sig';
export const SIGNATURE_FORMAT = 'moead-edge.signature/v1';

function rawPublicKey(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}

/** An Ed25519 public key as base64 of its 32 raw bytes. */
export const PublicKeySchema = z.string().refine((v) => rawPublicKey(v) !== undefined, 'expected an Ed25519 public key: base64 of 32 bytes (44 characters), as `moead-edge keygen` prints it');

export const SignatureFileSchema = z.strictObject({
  format: z.literal(SIGNATURE_FORMAT),
  /** The signer's public key (same form as ota.trustedKeys), so a refusal can say which key signed. */
  key: PublicKeySchema,
  /** Base64 of the 64-byte Ed25519 signature of manifest.json's bytes. */
  signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'expected base64 of a 64-byte Ed25519 signature'),
});
export type SignatureFile = z.infer<typeof SignatureFileSchema>;

function publicKeyObject(base64: string): KeyObject {
  const raw = rawPublicKey(base64);
  if (!raw) throw new Error(`not an Ed25519 public key: ${JSON.stringify(base64.slice(0, 60))}`);
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}

function publicKeyText(key: KeyObject): string {
  const { x } = key.export({ format: 'jwk' });
  if (typeof x !== 'string') throw new Error('not an Ed25519 key');
  return Buffer.from(x, 'base64url').toString('base64');
}

/** A new signing key: the private key as PKCS#8 PEM, the public key as ota.trustedKeys wants it. */
export function generateSigningKey(): { privatePem: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey: publicKeyText(publicKey) };
}

/** Signs manifest bytes with a PKCS#8 PEM Ed25519 private key; returns manifest.sig's object. */
export function signManifest(manifest: Buffer, privatePem: string): SignatureFile {
  const key = createPrivateKey(privatePem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`the signing key is ${key.asymmetricKeyType ?? 'not asymmetric'}, expected ed25519`);
  return {
    format: SIGNATURE_FORMAT,
    key: publicKeyText(createPublicKey(key)),
    signature: sign(null, manifest, key).toString('base64'),
  };
}

/** Parses manifest.sig's text; the error names what is wrong. */
export function parseSignatureFile(text: string): SignatureFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${SIGNATURE_FILE} is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const parsed = SignatureFileSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${SIGNATURE_FILE}: ${parsed.error.issues.map((i) => `${formatKeyPath(i.path)}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/**
 * Throws unless `signature` is a valid signature of `manifest` by one of `trusted`. The key
 * named in the file only picks which trusted key to try; trust comes from the config alone.
 */
export function verifyManifest(manifest: Buffer, signature: SignatureFile, trusted: readonly string[]): void {
  if (trusted.length === 0) throw new Error('ota.trustedKeys is empty: this device accepts no signed bundle (add the fleet key that `moead-edge keygen` printed)');
  const key = trusted.find((k) => Buffer.from(k, 'base64').equals(Buffer.from(signature.key, 'base64')));
  if (key === undefined) throw new Error(`signed by key ${signature.key}, which is not in ota.trustedKeys`);
  if (!verify(null, manifest, publicKeyObject(key), Buffer.from(signature.signature, 'base64'))) {
    throw new Error(`the signature in ${SIGNATURE_FILE} does not match manifest.json (altered after signing, or signed by another key)`);
  }
}
