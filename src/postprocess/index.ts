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
export { anomalyRegions, type AnomalyRegion } from './regions.js';
export { normalizeScore, normalizedRange, type ThresholdPoint } from './normalize.js';
export { heatmapRgba, jet, renderSnapshot, type SnapshotOptions, type SnapshotOverlay } from './snapshot.js';
