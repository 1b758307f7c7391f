/** The telemetry concern: device figures the daemon adds to its health message, and the Prometheus endpoint. */
export { collectSystem, gpuLoadPercent, thermalZones, type SystemFigures, type SystemPaths } from './system.js';
export { MetricsExporter } from './prometheus.js';
export { PrometheusConfigSchema, type PrometheusConfig } from './config.js';
