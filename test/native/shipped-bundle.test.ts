// The native CPU kernels on the shipped bundle: reference frames preprocessed by the addon,
// run by the onnxruntime backend, post-processed by the addon, give the scores the toolchain
// wrote into the manifest (within 1e-4 relative, as the JS path is held to).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { loadBundle } from '../../src/bundle/load.js';
import { InferenceConfigSchema } from '../../src/inference/config.js';
import { OnnxruntimeBackend } from '../../src/inference/onnxruntime-backend.js';
import { nativeOps, normalizeSpecOf, postprocessPlanOf } from '../../src/native/binding.js';
import { REPO_ROOT } from '../../src/toolchain/python-env.js';

const SHIPPED = join(REPO_ROOT, InferenceConfigSchema.parse({}).model);

describe('native kernels on the shipped bundle', { skip: existsSync(join(SHIPPED, 'manifest.json')) ? undefined : `${SHIPPED} has not been built yet` }, () => {
  it('reference frames score as the manifest says', async (t) => {
    const bundle = await loadBundle(SHIPPED);
    const { manifest } = bundle;
    const ops = nativeOps('cpu');
    const backend = new OnnxruntimeBackend();
    await backend.load(bundle, { providers: ['cpu'], threads: 1, precision: 'int8' });
    try {
      for (const ref of manifest.reference_frames) {
        const { data, info } = await sharp(join(bundle.dir, ref.file)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
        const tensor = await ops.preprocess({ data, format: 'rgb24', width: info.width, height: info.height }, normalizeSpecOf(manifest.input));
        const { maps } = await backend.run(tensor, 1);
        const { score } = await ops.postprocess(maps, manifest.output.width, manifest.output.height, postprocessPlanOf(manifest.postprocess));
        const rel = Math.abs(score - ref.score) / Math.max(Math.abs(ref.score), 1e-12);
        t.diagnostic(`${ref.file} (${ref.label}): native ${score.toPrecision(7)} vs manifest ${ref.score.toPrecision(7)}, relative ${rel.toExponential(2)}`);
        assert.ok(rel < 1e-4, `${ref.file}: native ${score} vs manifest ${ref.score} (relative ${rel})`);
      }
    } finally {
      await backend.dispose();
    }
  });
});
