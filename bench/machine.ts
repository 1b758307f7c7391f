/** The machine a table was measured on, so figures from different machines are never mixed up. */
import { readFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { env as ortEnv } from 'onnxruntime-node';

export interface Machine {
  cpu: string;
  cores: number;
  /** ISA extensions that decide INT8 speed on CPUs (VNNI on x86, dot-product on ARM). */
  int8Features: string[];
  memoryGiB: number;
  node: string;
  onnxruntime: string;
  platform: string;
}

function cpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

export function describeMachine(): Machine {
  const info = cpuinfo();
  const model = /^(model name|Hardware|Model)\s*:\s*(.+)$/m.exec(info)?.[2]?.trim() ?? 'unknown CPU';
  const flags = new Set((/^(flags|Features)\s*:\s*(.+)$/m.exec(info)?.[2] ?? '').split(/\s+/));
  return {
    cpu: model,
    cores: availableParallelism(),
    int8Features: ['avx512_vnni', 'avx_vnni', 'avx2', 'asimddp'].filter((f) => flags.has(f)),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    onnxruntime: ortEnv.versions.node ?? ortEnv.versions.common ?? 'unknown',
    platform: `${process.platform}-${process.arch}`,
  };
}

export function machineLine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores${m.int8Features.length ? ` (${m.int8Features.join(', ')})` : ''}, ${m.memoryGiB} GiB, ${m.platform}, Node ${m.node}, onnxruntime-node ${m.onnxruntime}`;
}
