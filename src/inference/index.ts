/** Everything the daemon and the CLI need from inference, pre- and post-processing. */
export type {
  BackendCapabilities,
  BackendName,
  BackendOptions,
  ExecutionProvider,
  InferenceBackend,
  InferenceResult,
  LoadedBundle,
} from './backend.js';
export { InferenceConfigSchema, type InferenceConfig } from './config.js';
export { DEFAULT_BACKEND_OPTIONS, Detector, openDetector, type Detection, type DetectionTimings, type DetectorOptions, type Postprocessor, type PreparedFrame, type Preprocessor } from './detector.js';
export { DYNAMIC_BATCH_LIMIT, OnnxruntimeBackend } from './onnxruntime-backend.js';
export {
  DEFAULT_THRESHOLD_RULE,
  IMAGE_EXTENSIONS,
  calibrate,
  frameFromFile,
  listImages,
  quantile,
  scoreImages,
  thresholdFromGood,
  writeManifestWithThreshold,
  type Calibration,
  type ScoredImage,
  type ThresholdRule,
} from './files.js';
export { BundleError, MANIFEST_FILE, loadBundle } from '../bundle/load.js';
export { PreprocessError, SUPPORTED_FRAME_FORMATS, type PreprocessFailure } from '../preprocess/index.js';
export { normalizeScore, type FloatMap, type ThresholdPoint } from '../postprocess/index.js';
