/** The exporter part of the `telemetry:` section; the telemetry folder owns this schema. */
import { z } from 'zod';

export const PrometheusConfigSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** Loopback by default: the figures are for a local scraper or an SSH tunnel, not the network. */
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 = any free port (tests); 9464 is the port the OpenTelemetry Prometheus exporter uses. */
  port: z.number().int().min(0).max(65535).default(9464),
});
export type PrometheusConfig = z.infer<typeof PrometheusConfigSchema>;
