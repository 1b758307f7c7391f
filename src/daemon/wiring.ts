/**
 * The real parts the daemon runs with: the inference concern's detector, the mqtt
 * concern's FleetLink (embedded broker when no URL), the capture concern's sources.
 */
import { createFrameSource } from '../capture/index.js';
import { openDetector } from '../inference/index.js';
import { createFleetLink } from '../mqtt/index.js';
import type { Logger } from '../util/log.js';
import { packageVersion } from '../util/paths.js';
import type { DaemonParts } from './daemon.js';

/** The (level, message) callback the other concerns log through, onto our logger. */
export function logCallback(log: Logger): (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void {
  return (level, message) => log[level](message);
}

export const realParts: DaemonParts = {
  async openDetector(config, inference, log) {
    let options = inference.options;
    if (inference.backend === 'native') {
      // The native addon's InferenceBackend is not part of this build yet (its own issue).
      if (inference.backendFrom === 'config') {
        throw new Error('inference.backend: "native" is not available in this build; set inference.backend: onnxruntime (or MOEAD_INFERENCE__BACKEND=onnxruntime)');
      }
      log.warn(`board ${config.board} prefers the native backend, which this build lacks: running onnxruntime on the CPU`);
      options = { ...options, providers: ['cpu'] };
    }
    log.debug(`opening ${config.inference.model}`);
    return openDetector({ bundleDir: config.inference.model, backend: options });
  },
  async createLink(config, model, log) {
    const link = createFleetLink(config.mqtt, {
      stateDir: config.stateDir,
      log: logCallback(log),
      cameras: config.cameras.map((c) => c.name),
      model: () => model,
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
