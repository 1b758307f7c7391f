export { PreprocessError, type PreprocessFailure } from './errors.js';
export {
  SUPPORTED_FRAME_FORMATS,
  decodeFrame,
  frameOrigin,
  normalizeInto,
  pixelsAtSize,
  preprocessBatch,
  preprocessFrame,
  type Pixels,
} from './image.js';
