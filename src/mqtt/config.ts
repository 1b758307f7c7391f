/** The `mqtt:` section of the config. The mqtt folder owns this schema. */
import { z } from 'zod';

export const MqttConfigSchema = z.strictObject({
  /** Broker URL (mqtt://, mqtts://, ws://). Absent: the daemon starts an embedded broker on loopback. */
  url: z.string().url().optional(),
  /** First topic level: <base>/<device>/... */
  base: z.string().regex(/^[^#+/]+$/, 'expected one topic level without / # +').default('moead'),
  /** Second topic level; defaults to the host name. */
  device: z.string().regex(/^[^#+/]+$/, 'expected one topic level without / # +').optional(),
  /** Port of the embedded broker when no url is given (0 = any free port). */
  embeddedPort: z.number().int().min(0).max(65535).default(1883),
});
export type MqttConfig = z.infer<typeof MqttConfigSchema>;
