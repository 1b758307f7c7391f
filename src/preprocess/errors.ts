/**
 * A frame that cannot become a model input. The daemon counts these per `reason` and skips
 * the frame; nothing else about the pipeline changes.
 */
export type PreprocessFailure =
  /** Encoded bytes that sharp cannot decode (truncated, corrupt, not an image). */
  | 'decode'
  /** A raw frame whose byte length does not match width × height × bytes per pixel. */
  | 'size'
  /** A pixel format this preprocessor does not convert (yuyv, nv12). */
  | 'format';

export class PreprocessError extends Error {
  override readonly name = 'PreprocessError';
  constructor(
    readonly reason: PreprocessFailure,
    /** Where the frame came from (file name, camera), for the log line. */
    readonly origin: string,
    message: string,
  ) {
    super(`${origin}: ${message}`);
  }
}
