/**
 * What the daemon prints on stdout once it publishes: where, and commands a user can
 * paste to watch the messages (mosquitto_sub and the mqtt package's CLI).
 */
export interface BrokerEndpoint {
  url: string;
  embedded: boolean;
  root: string;
}

export function watchLines(endpoint: BrokerEndpoint, base: string): string[] {
  const url = new URL(endpoint.url);
  const tls = url.protocol === 'mqtts:' || url.protocol === 'wss:';
  const port = url.port || (tls ? '8883' : '1883');
  const host = url.hostname;
  const topic = `'${base}/#'`;
  const auth = url.username ? ` -u ${decodeURIComponent(url.username)} -P '<password>'` : '';
  return [
    `moead-edge: publishing to ${url.protocol}//${host}:${port} under ${endpoint.root}/${endpoint.embedded ? ' (embedded broker: no mqtt.url configured)' : ''}`,
    'watch it with either of:',
    `  mosquitto_sub -h ${host} -p ${port}${auth}${tls ? ' --capath /etc/ssl/certs' : ''} -t ${topic} -v`,
    `  npx mqtt sub -h ${host} -p ${port}${auth}${tls ? ' -l mqtts' : ''} -t ${topic} -v`,
  ];
}
