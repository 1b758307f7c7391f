/**
 * The daemon's MQTT commands. Requests are parsed with the contract's schemas (never
 * cast); a handler that throws becomes `{ok:false, error}` and the daemon goes on.
 */
import type { z } from 'zod';
import { COMMAND_SCHEMAS } from '../mqtt/topics.js';
import type { CommandHandler, FleetLink } from '../mqtt/link.js';
import type { ConfigChange, ConfigStore } from '../config/store.js';
import { formatKeyPath } from '../util/key-path.js';
import type { ModelUpdater } from '../ota/index.js';
import type { CameraPipeline } from './camera-pipeline.js';

export interface CommandContext {
  store: ConfigStore;
  cameras: readonly CameraPipeline[];
  /** The `status` reply's body. */
  status: () => Record<string, unknown>;
  /** Over-the-air model updates and rollbacks. */
  models: ModelUpdater;
}

function parse<S extends z.ZodType>(schema: S, request: unknown): z.infer<S> {
  const parsed = schema.safeParse(request);
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((i) => `${formatKeyPath(i.path)}: ${i.message}`).join('; '));
  }
  return parsed.data;
}

/** What the daemon holds of its commands once they are registered. */
export interface Commands {
  /**
   * Refuses every command from now on, and waits for those being served, at most `waitMs`
   * (a handler that never settles must not hold the stop up). Returns how many were left running.
   */
  close(waitMs: number): Promise<number>;
}

function changeResult(change: ConfigChange): { applied: string[]; restart_required: string[] } {
  if (!change.ok) throw new Error(change.error);
  return { applied: change.applied, restart_required: change.restartRequired };
}

function findCamera(cameras: readonly CameraPipeline[], name: string): CameraPipeline {
  const camera = cameras.find((c) => c.name === name);
  if (!camera) throw new Error(`camera: no camera named "${name}" (configured: ${cameras.map((c) => c.name).join(', ')})`);
  return camera;
}

export function registerCommands(link: FleetLink, context: CommandContext): Commands {
  const handlers: Record<string, CommandHandler> = {
    status: async (request) => {
      parse(COMMAND_SCHEMAS.status, request);
      return context.status();
    },
    'set-threshold': async (request) => {
      const { camera, threshold, persist } = parse(COMMAND_SCHEMAS['set-threshold'], request);
      if (camera !== undefined) findCamera(context.cameras, camera);
      const path = camera === undefined ? ['scoring', 'threshold'] : ['scoring', 'cameraThresholds', camera];
      const change = await context.store.set(path, threshold, { persist: persist ?? false });
      const result = changeResult(change);
      return {
        ...result,
        persisted: 'persisted' in change ? change.persisted === true : false,
        thresholds: Object.fromEntries(context.cameras.map((c) => [c.name, c.threshold().value])),
      };
    },
    snapshot: async (request) => {
      const { camera } = parse(COMMAND_SCHEMAS.snapshot, request);
      return findCamera(context.cameras, camera).publishSnapshotNow();
    },
    'restart-camera': async (request) => {
      const { camera } = parse(COMMAND_SCHEMAS['restart-camera'], request);
      return findCamera(context.cameras, camera).restartSource();
    },
    'reload-config': async (request) => {
      parse(COMMAND_SCHEMAS['reload-config'], request);
      return changeResult(await context.store.reload());
    },
    // Replies once the update is accepted; its steps and outcome go to <root>/ota.
    'update-model': async (request) => context.models.update(parse(COMMAND_SCHEMAS['update-model'], request)),
    'rollback-model': async (request) => {
      const { id } = parse(COMMAND_SCHEMAS['rollback-model'], request);
      return context.models.rollBack(id);
    },
  };
  // Served while the daemon stops, a command would change what is being torn down: a rollback
  // rewriting state.json after `stopped`, a camera's source started again after it stopped.
  const serving = new Set<Promise<unknown>>();
  let closed = false;
  const guarded = (handler: CommandHandler): CommandHandler => (request) => {
    if (closed) return Promise.reject(new Error('the daemon is stopping'));
    const served = handler(request);
    serving.add(served);
    const done = () => serving.delete(served);
    served.then(done, done);
    return served;
  };
  for (const [name, handler] of Object.entries(handlers)) link.onCommand(name, guarded(handler));
  return {
    async close(waitMs) {
      closed = true;
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, waitMs);
      });
      const settled = (async () => {
        while (serving.size > 0) await Promise.allSettled(serving);
      })();
      await Promise.race([settled, gaveUp]);
      clearTimeout(timer);
      return serving.size;
    },
  };
}
