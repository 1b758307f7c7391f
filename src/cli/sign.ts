/**
 * `moead-edge keygen` and `moead-edge sign`: the fleet's signing key, and the signature a
 * bundle needs before devices accept it over the air (docs/ota.md).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BundleError, MANIFEST_FILE, loadBundle } from '../bundle/load.js';
import { SIGNATURE_FILE, generateSigningKey, signManifest } from '../ota/signature.js';
import { EXIT, UsageError, parse } from './args.js';

export const KEYGEN_USAGE = `usage: moead-edge keygen --out FILE
  Makes an Ed25519 signing key for model updates. Writes the private key to FILE
  (PKCS#8 PEM, mode 0600, never overwritten) and prints the public key, which goes into
  each device's config as ota.trustedKeys. Keep FILE off the devices.`;

export const SIGN_USAGE = `usage: moead-edge sign --key FILE BUNDLE_DIR
  Checks the bundle (manifest, sizes, sha256) and writes BUNDLE_DIR/${SIGNATURE_FILE}: the
  Ed25519 signature of its manifest.json made with the private key in FILE. Serve the folder
  over HTTP(S) and send devices {"id":"…","url":"https://…/BUNDLE_DIR/"} on cmd/update-model.`;

export async function keygenCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { out: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } }, KEYGEN_USAGE);
  if (values.help) {
    console.log(KEYGEN_USAGE);
    return EXIT.ok;
  }
  if (values.out === undefined) throw new UsageError('--out FILE is required', KEYGEN_USAGE);
  const key = generateSigningKey();
  try {
    await writeFile(values.out, key.privatePem, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    console.error(`moead-edge: ${resolve(values.out)}: ${code === 'EEXIST' ? 'exists already (a key is never overwritten)' : (code ?? String(err))}`);
    return EXIT.failed;
  }
  console.error(`private key written to ${resolve(values.out)}`);
  console.log(key.publicKey);
  return EXIT.ok;
}

export async function signCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { key: { type: 'string', short: 'k' }, help: { type: 'boolean', short: 'h' } }, SIGN_USAGE, { positionals: true });
  if (values.help) {
    console.log(SIGN_USAGE);
    return EXIT.ok;
  }
  if (values.key === undefined) throw new UsageError('--key FILE is required', SIGN_USAGE);
  if (positionals.length !== 1) throw new UsageError('one BUNDLE_DIR expected', SIGN_USAGE);
  const dir = resolve(positionals[0] as string);
  let privatePem: string;
  try {
    privatePem = await readFile(values.key, 'utf8');
  } catch (err) {
    console.error(`moead-edge: ${resolve(values.key)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    return EXIT.failed;
  }
  try {
    // Only a bundle whose files match its manifest is worth a signature.
    await loadBundle(dir);
    const signature = signManifest(await readFile(join(dir, MANIFEST_FILE)), privatePem);
    await writeFile(join(dir, SIGNATURE_FILE), `${JSON.stringify(signature, null, 2)}\n`);
    console.error(`signed ${join(dir, MANIFEST_FILE)} with key ${signature.key}`);
    console.log(join(dir, SIGNATURE_FILE));
    return EXIT.ok;
  } catch (err) {
    console.error(`moead-edge: ${err instanceof BundleError ? err.message : `${resolve(values.key)}: ${err instanceof Error ? err.message : String(err)}`}`);
    return EXIT.failed;
  }
}
