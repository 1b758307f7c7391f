/**
 * Whether this CPU computes onnxruntime's 8-bit products exactly. On x86 without VNNI
 * (AVX2 or AVX-512 alone: Haswell to Skylake, AMD Zen 1 to 3), MLAS multiplies uint8
 * activations by int8 weights with vpmaddubsw, which adds each pair of products into a
 * saturating 16-bit sum: 255 × 127 × 2 does not fit. VNNI, ARM's kernels (NEON widening or
 * dot products) and TensorRT add in 32 bits. Measured on the shipped bundle under QEMU's
 * Haswell CPU, against this project's VNNI host: test-image scores moved by 1.1 % (median) and
 * up to 16 %, and 10 of 450 decisions flipped; with 7-bit weights (the toolchain's --weight-bits 7) the median score did
 * not move, the largest change was 0.18 % and no decision flipped (docs/inference.md).
 */
import { readFileSync } from 'node:fs';

function cpuFlags(cpuinfo: string): Set<string> {
  return new Set((/^(?:flags|Features)\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? '').split(/\s+/));
}

/** Why 8-bit weights may score differently on this CPU than where the model was made, or undefined when they should not. */
export function int8SaturationNote(cpuinfo?: string, arch: string = process.arch): string | undefined {
  if (arch !== 'x64') return undefined;
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return undefined; // Not Linux: nothing to say rather than a guess.
    }
  }
  const flags = cpuFlags(text);
  if (flags.has('avx512_vnni') || flags.has('avx_vnni')) return undefined;
  return "this x86 CPU has no VNNI, so onnxruntime's 8-bit products saturate in 16 bits here; a bundle quantized with --weight-bits 7 scores here as on other CPUs, or recalibrate the threshold on this device (moead-edge calibrate)";
}
