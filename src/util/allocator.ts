/**
 * Which malloc this process runs on. `scripts/daemon-node.sh` (what `npm start` runs) preloads
 * jemalloc when MOEAD_MALLOC=jemalloc; the daemon reports the answer in its start-up log and
 * in telemetry (`process.allocator`), since RSS behaves differently under the two
 * (docs/bench.md, memory).
 */
import { readFileSync } from 'node:fs';

export type MemoryAllocator = 'jemalloc' | 'system';

/** From the text of /proc/PID/maps: jemalloc when its library is mapped. */
export function allocatorFromMaps(maps: string): MemoryAllocator {
  return /\/libjemalloc\.so[.\d]*$/m.test(maps) ? 'jemalloc' : 'system';
}

let cached: MemoryAllocator | undefined;

/** This process's allocator (read once; a preload cannot change after start). */
export function memoryAllocator(): MemoryAllocator {
  if (cached === undefined) {
    try {
      cached = allocatorFromMaps(readFileSync('/proc/self/maps', 'utf8'));
    } catch {
      cached = 'system'; // no /proc (macOS): nothing preloads jemalloc there
    }
  }
  return cached;
}
