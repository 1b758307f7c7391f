/**
 * `moead-edge run`: the daemon in the foreground. A bad config refuses to start (exit 1)
 * with every problem listed. SIGTERM/SIGINT stop it cleanly (exit 0; a second signal
 * exits at once with 1); SIGHUP and edits of the config file reload it.
 */
import { configFileFrom, loadConfig } from '../config/load.js';
import { ConfigError } from '../config/errors.js';
import { ConfigStore, type ConfigChange } from '../config/store.js';
import { Daemon, type DaemonParts } from '../daemon/daemon.js';
import { realParts } from '../daemon/wiring.js';
import { loadNative } from '../native/binding.js';
import { createLogger, errorMessage } from '../util/log.js';
import { serviceNotifier } from '../util/sd-notify.js';
import { EXIT, parse } from './args.js';

export const RUN_USAGE = `usage: moead-edge run [--config FILE]
  Runs the daemon: captures frames, scores them, publishes over MQTT.
  --config FILE   YAML or JSON config (default: $MOEAD_CONFIG, else built-in defaults:
                  the sample frames, the shipped bundle, an embedded broker)
  MOEAD_<SECTION>__<KEY>=value overrides any key (see docs/config.md).`;

export async function runCommand(argv: string[], parts: DaemonParts = realParts): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, RUN_USAGE);
  if (values.help) {
    console.log(RUN_USAGE);
    return EXIT.ok;
  }
  let store: ConfigStore;
  try {
    store = new ConfigStore(await loadConfig(configFileFrom(values.config)));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`moead-edge: refusing to start: ${err.message}`);
    return EXIT.failed;
  }
  const log = createLogger('moead', store.current.logLevel);
  const daemon = new Daemon(store, parts, log);
  // Under systemd (Type=notify): readiness, keep-alives while healthy, stopping.
  const service = serviceNotifier({ env: process.env, pid: process.pid, transport: () => loadNative().sdNotify, log: log.child('systemd') });

  let starting: Promise<void> = Promise.resolve();
  let signals = 0;
  let stopped: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => {
    stopped = resolve;
  });
  const onStop = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      log.error(`${signal} again: exiting without waiting for in-flight work`);
      process.exit(EXIT.failed);
    }
    log.info(`${signal}: stopping (sources, in-flight frames, MQTT delivery)`);
    service.stopping(`stopping on ${signal}`);
    // A signal during start-up stops what has started once start-up settles, not half of it.
    void starting
      .catch(() => undefined)
      .then(() => daemon.stop())
      .then(
        () => stopped(EXIT.ok),
        (err: unknown) => {
          log.error(`stop failed: ${errorMessage(err)}`);
          stopped(EXIT.failed);
        },
      );
  };
  const report = (change: ConfigChange) => {
    if (!change.ok) log.error(`config change refused, the running config stays: ${change.error}`);
    else if (change.applied.length || change.restartRequired.length) {
      log.info(`config reloaded: applied ${change.applied.join(', ') || 'nothing'}${change.restartRequired.length ? `; restart needed for ${change.restartRequired.join(', ')}` : ''}`);
    }
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', () => void store.reload().then(report));
  starting = daemon.start();

  try {
    await starting;
  } catch (err) {
    log.error(`could not start: ${errorMessage(err)}`);
    service.status(`could not start: ${errorMessage(err)}`);
    return EXIT.failed;
  }
  store.watchFile(report);
  // A signal during start-up already began the stop: no READY after STOPPING.
  if (signals === 0) service.ready(daemon.summary());
  service.watch(() => daemon.health());
  if (service.keepAliveMs !== undefined) log.info(`systemd watchdog: a keep-alive every ${service.keepAliveMs} ms while healthy`);
  const code = await done;
  service.close();
  return code;
}
