/** Which CPUs get the 8-bit saturation note: x86 without VNNI only (src/inference/cpu-int8.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { int8SaturationNote } from '../../src/inference/cpu-int8.js';

// Flag lines as Linux prints them, cut to what matters here.
const HASWELL = 'processor\t: 0\nflags\t\t: fpu sse2 ssse3 sse4_1 sse4_2 avx fma avx2 bmi2\n';
const SKYLAKE_SP = 'flags\t\t: avx2 avx512f avx512bw avx512vl\n';
const ICE_LAKE = 'flags\t\t: avx2 avx512f avx512bw avx512_vnni\n';
const ALDER_LAKE = 'flags\t\t: avx2 avx_vnni\n';
const JETSON = 'processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n';

test('x86 without VNNI (AVX2 alone, or AVX-512 without VNNI) gets the note, naming the way out', () => {
  for (const cpuinfo of [HASWELL, SKYLAKE_SP]) {
    const note = int8SaturationNote(cpuinfo, 'x64');
    assert.ok(note, cpuinfo);
    assert.match(note, /no VNNI/);
    assert.match(note, /--weight-bits 7/);
    assert.match(note, /moead-edge calibrate/);
  }
});

test('x86 with VNNI (AVX-512 or AVX) and ARM compute 8-bit products exactly: no note', () => {
  assert.equal(int8SaturationNote(ICE_LAKE, 'x64'), undefined);
  assert.equal(int8SaturationNote(ALDER_LAKE, 'x64'), undefined);
  assert.equal(int8SaturationNote(JETSON, 'arm64'), undefined);
  // A flag must be a whole word: avx512_vnni inside another name does not count.
  assert.ok(int8SaturationNote('flags\t\t: avx2 xavx512_vnni\n', 'x64'));
});
