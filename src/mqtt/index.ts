/** The mqtt concern's public face: the daemon needs createFleetLink and the topic contract. */
import type { MqttConfig } from './config.js';
import { MqttFleetLink, type FleetLinkDeps, type FleetLinkHandle } from './fleet-link.js';

export type { FleetLinkDeps, FleetLinkHandle } from './fleet-link.js';
export type { CommandHandler, EventMessage, FleetLink, ScoreMessage } from './link.js';
export { MqttConfigSchema, type MqttConfig } from './config.js';
export * from './topics.js';

/** A link that is not started yet: call start(), then announceOnline() once the daemon runs. */
export function createFleetLink(config: MqttConfig, deps: FleetLinkDeps): FleetLinkHandle {
  return new MqttFleetLink(config, deps);
}
