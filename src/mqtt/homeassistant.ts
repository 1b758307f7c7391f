/**
 * Home Assistant MQTT discovery: retained config messages under
 * `<prefix>/<component>/<node>/<object>/config` make each camera's score, normalized score,
 * anomaly state and snapshot appear in Home Assistant without manual setup. They are sent on
 * every connect and again whenever Home Assistant announces itself on `<prefix>/status`
 * (after an HA restart it has forgotten entities whose config it did not see retained).
 */
import type { DeviceTopics } from './topics.js';

export interface DiscoveryInfo {
  prefix: string;
  topics: DeviceTopics;
  cameras: readonly string[];
  model?: { name: string; version: string } | undefined;
  softwareVersion: string;
}

export interface DiscoveryMessage {
  topic: string;
  payload: string;
}

/** Jinja that Home Assistant renders on each score message into the anomaly sensor's attributes. */
export const REGIONS_ATTRIBUTES = '{{ {"regions": value_json.regions if value_json.regions is defined else [], "seq": value_json.seq} | tojson }}';

/** HA node and object ids allow [a-zA-Z0-9_-] only. */
const haId = (s: string): string => s.replace(/[^a-zA-Z0-9_-]/g, '_');

export function discoveryMessages(info: DiscoveryInfo): DiscoveryMessage[] {
  const { topics } = info;
  // The node level is the bare device name so that a broker ACL pattern (%u is a whole level) can match it.
  const node = haId(topics.device);
  const uniquePrefix = haId(`moead_${topics.device}`);
  const device = {
    identifiers: [uniquePrefix],
    name: `moead-edge ${topics.device}`,
    manufacturer: 'moead-edge',
    model: info.model ? `${info.model.name} ${info.model.version}` : 'MoEAD anomaly camera',
    sw_version: info.softwareVersion,
  };
  const common = {
    availability_topic: topics.availability,
    payload_available: 'online',
    payload_not_available: 'offline',
    device,
    origin: { name: 'moead-edge', sw: info.softwareVersion },
  };
  const out: DiscoveryMessage[] = [];
  const add = (component: string, object: string, config: Record<string, unknown>): void => {
    const objectId = haId(object);
    out.push({
      topic: `${info.prefix}/${component}/${node}/${objectId}/config`,
      payload: JSON.stringify({ ...config, unique_id: `${uniquePrefix}_${objectId}`, ...common }),
    });
  };
  for (const camera of info.cameras) {
    add('sensor', `${camera}_score`, {
      name: `${camera} anomaly score`,
      state_topic: topics.score(camera),
      value_template: '{{ value_json.score }}',
      state_class: 'measurement',
    });
    add('sensor', `${camera}_normalized`, {
      name: `${camera} normalized score`,
      state_topic: topics.score(camera),
      value_template: '{{ value_json.normalized }}',
      state_class: 'measurement',
    });
    add('binary_sensor', `${camera}_anomalous`, {
      name: `${camera} anomaly`,
      state_topic: topics.score(camera),
      value_template: "{{ 'ON' if value_json.anomalous else 'OFF' }}",
      device_class: 'problem',
      // The same message's regions as the sensor's attributes, so an automation or a card can
      // say where; an empty list on a frame under the threshold, which has none.
      json_attributes_topic: topics.score(camera),
      json_attributes_template: REGIONS_ATTRIBUTES,
    });
    add('image', `${camera}_snapshot`, {
      name: `${camera} snapshot`,
      image_topic: topics.snapshot(camera),
      content_type: 'image/jpeg',
    });
  }
  return out;
}
