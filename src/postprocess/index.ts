export {
  avgPoolMax,
  checkPostprocessSpec,
  gaussianBlur,
  gaussianKernel,
  mapMax,
  postprocessMap,
  reflectIndex,
  upsampleBilinear,
  type FloatMap,
} from './map.js';
export { normalizeScore, type ThresholdPoint } from './normalize.js';
export { heatmapRgba, jet, renderSnapshot, type SnapshotOptions, type SnapshotOverlay } from './snapshot.js';
