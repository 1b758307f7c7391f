/** The `ota:` section of the config. The ota folder owns this schema. */
import { z } from 'zod';
import { PublicKeySchema } from './signature.js';

export const OtaConfigSchema = z.strictObject({
  /**
   * Ed25519 public keys (base64 of the 32 raw bytes, as `moead-edge keygen` prints them)
   * whose signature on a bundle's manifest.json is accepted. Empty: every update is refused.
   */
  trustedKeys: z.array(PublicKeySchema).max(32).default([]),
  /** Largest update accepted, all downloaded files together. */
  maxBytes: z.number().int().positive().max(16 * 1024 ** 3).default(512 * 1024 ** 2),
  /** Seconds one file may take to download, retries included, before the update fails. */
  downloadTimeoutS: z.number().positive().max(86_400).default(900),
  /**
   * Further attempts for a file whose transfer broke off or met a server error (5xx, 408,
   * 429), 1 s apart and doubling up to 30 s, resumed where it stopped when the server takes
   * Range requests. Client errors (4xx) and wrong sizes or hashes are not retried.
   */
  downloadRetries: z.number().int().min(0).max(20).default(5),
  /**
   * How far a reference frame's score may be from the one in the manifest, relative to it.
   * INT8 kernels of another CPU or GPU agree with the toolchain's to a few per cent
   * (docs/toolchain.md), so 1e-4 would refuse every cross-architecture update.
   */
  referenceTolerance: z.number().min(0).max(1).default(0.1),
  /** Seconds after a switch during which bad health (stuck or failing inference) rolls it back. */
  probationS: z.number().min(0).max(86_400).default(300),
});
export type OtaConfig = z.infer<typeof OtaConfigSchema>;
