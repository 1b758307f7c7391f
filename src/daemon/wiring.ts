/**
 * The real parts the daemon runs with: the inference concern's detector, the mqtt
 * concern's FleetLink (embedded broker when no URL), the capture concern's sources.
 */
import { createFrameSource } from '../capture/index.js';
import type { InferenceBackend } from '../inference/backend.js';
import { openDetector } from '../inference/index.js';
import { createFleetLink } from '../mqtt/index.js';
import { NativeLoadError } from '../native/binding.js';
import { NativeBackend, NativeBackendUnavailable } from '../native/native-backend.js';
import { nativePostprocessor } from '../native/postprocessor.js';
import { nativePreprocessor } from '../native/preprocessor.js';
import type { Logger } from '../util/log.js';
import { packageVersion } from '../util/paths.js';
import type { DaemonParts } from './daemon.js';

/** The (level, message) callback the other concerns log through, onto our logger. */
export function logCallback(log: Logger): (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void {
  return (level, message) => log[level](message);
}

export const realParts: DaemonParts = {
  async openDetector(bundleDir, inference, log) {
    const native = { ...nativePreprocessor(), ...nativePostprocessor() };
    log.debug(native.postprocessor ? 'pre- and post-processing with the native kernels' : `pre- and post-processing in sharp and TypeScript (native addon: ${native.reason})`);
    const open = (createBackend?: () => InferenceBackend) =>
      openDetector({
        bundleDir,
        backend: inference.options,
        ...(createBackend ? { createBackend } : {}),
        ...(native.preprocessor ? { preprocessor: native.preprocessor } : {}),
        ...(native.postprocessor ? { postprocessor: native.postprocessor } : {}),
        ...(native.overlay ? { overlay: native.overlay } : {}),
      });
    log.debug(`opening ${bundleDir}`);
    // What onnxruntime could not do as asked (GPU providers dropped, subnormals not flushed).
    const openOnnxruntime = async () => {
      const detector = await open();
      for (const note of detector.providerNotes()) log.warn(`${bundleDir}: ${note}`);
      return detector;
    };
    if (inference.backend !== 'native') return openOnnxruntime();
    try {
      return await open(() => new NativeBackend({ onProgress: (message) => log.info(message) }));
    } catch (err) {
      // The onnxruntime backend is the fallback wherever the addon has no TensorRT (or no GPU).
      if (!(err instanceof NativeBackendUnavailable || err instanceof NativeLoadError)) throw err;
      const from = inference.backendFrom === 'config' ? 'inference.backend' : `board ${inference.board}`;
      log.warn(`${from} asks for the native backend, which is unavailable here: ${err.message} Running onnxruntime instead.`);
      return openOnnxruntime();
    }
  },
  async createLink(config, model, log) {
    const link = createFleetLink(config.mqtt, {
      stateDir: config.stateDir,
      log: logCallback(log),
      cameras: config.cameras.map((c) => c.name),
      model,
      softwareVersion: packageVersion(),
    });
    return {
      link,
      url: () => link.url,
      embedded: config.mqtt.url === undefined,
      root: link.topics.root,
      stats: () => link.stats(),
    };
  },
  createSource(camera, board, log) {
    return createFrameSource(camera, { board: board.capture, log: logCallback(log) });
  },
};
