/**
 * The periodic health message: per-camera rates, latency percentiles and drops, process
 * resources, the model in use, board sensors, and the link's counters when it has them.
 */
import { performance } from 'node:perf_hooks';
import type { BoardProfile } from '../config/board.js';
import type { BackendCapabilities } from '../inference/backend.js';
import type { CameraPipeline } from './camera-pipeline.js';
import { collectSystem } from '../telemetry/index.js';
import { readSensors } from './sensors.js';
import { memoryAllocator } from '../util/allocator.js';

/** How the model's reference frames scored on this device at start (Daemon's check). */
export interface ReferenceCheckSummary {
  frames: number;
  /** Largest |score − manifest score| over the frames. */
  max_difference: number;
  /** Every frame within ota.referenceTolerance and on its label's side of the threshold. */
  ok: boolean;
}

export interface TelemetrySources {
  startedMono: number;
  /** The state folder: its file system's free space is reported. */
  stateDir: string;
  board: BoardProfile;
  /** The model in force at the time of each message (an update may switch it). */
  model: () => { name: string; version: string; sha256: string; reference_check?: ReferenceCheckSummary };
  capabilities: () => BackendCapabilities;
  cameras: readonly CameraPipeline[];
  /** The link's counters, when the implementation offers them. */
  linkStats?: () => Record<string, unknown>;
}

/** CPU use of this process between calls, in percent of one core. */
export class CpuMeter {
  #last = process.cpuUsage();
  #lastAt = performance.now();

  read(): number {
    const now = performance.now();
    const usage = process.cpuUsage(this.#last);
    const wallUs = (now - this.#lastAt) * 1000;
    this.#last = process.cpuUsage();
    this.#lastAt = now;
    return wallUs > 0 ? Math.round(((usage.user + usage.system) / wallUs) * 1000) / 10 : 0;
  }
}

export async function buildTelemetry(sources: TelemetrySources, cpu: CpuMeter): Promise<Record<string, unknown>> {
  const memory = process.memoryUsage();
  const capabilities = sources.capabilities();
  const cameras = Object.fromEntries(sources.cameras.map((c) => [c.name, c.telemetry()]));
  const rssMb = Math.round(memory.rss / 1048576);
  return {
    ts: new Date().toISOString(),
    uptime_s: Math.round((performance.now() - sources.startedMono) / 100) / 10,
    cameras,
    ...(sources.linkStats ? { link: sources.linkStats() } : {}),
    process: {
      rss_mb: rssMb,
      heap_mb: Math.round(memory.heapUsed / 1048576),
      allocator: memoryAllocator(),
      cpu_percent: cpu.read(),
      memory_budget_mb: sources.board.memoryBudgetMb,
      over_budget: rssMb > sources.board.memoryBudgetMb,
    },
    model: { ...sources.model(), backend: capabilities.backend, providers: capabilities.providers },
    board: { name: sources.board.name, ...(await readSensors(sources.board)) },
    system: await collectSystem(sources.stateDir),
  };
}
