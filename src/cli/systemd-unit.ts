/**
 * `moead-edge systemd-unit`: prints a systemd service unit for this install, so that an
 * unattended board runs the daemon at boot, restarts it when it fails or stops answering,
 * and starts the units that need it once it publishes. The paths are this checkout's and
 * this Node's, resolved now: systemd's PATH rarely holds the node a user installed.
 */
import { resolve } from 'node:path';
import { ConfigError } from '../config/errors.js';
import { loadConfig } from '../config/load.js';
import { loadNative } from '../native/binding.js';
import { errorMessage } from '../util/log.js';
import { PACKAGE_ROOT, packageVersion } from '../util/paths.js';
import { EXIT, numberOption, parse } from './args.js';

export const SYSTEMD_UNIT_USAGE = `usage: moead-edge systemd-unit [--config FILE] [--user NAME] [--watchdog SECONDS]
  Prints a systemd service unit that runs this install's daemon: Type=notify (ready once it
  publishes), a watchdog that restarts it when it hangs or its model stops answering,
  restart on failure, state in /var/lib/moead-edge. Notifications need the native addon:
  without it the unit is Type=simple with no watchdog, and a warning says why. Install it with
    moead-edge systemd-unit --config /etc/moead-edge/config.yaml --user moead \\
      | sudo tee /etc/systemd/system/moead-edge.service
    sudo systemctl daemon-reload && sudo systemctl enable --now moead-edge
  --config FILE        the daemon's config (checked now; default: built-in defaults)
  --user NAME          the account it runs as (default: root; the account needs read access to
                       the install and the cameras, e.g. the video group for /dev/video*)
  --watchdog SECONDS   keep-alive deadline, 0 for none (default 30)`;

const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}\$?$/i;

/**
 * One ExecStart= argument: quoted, with the characters systemd would otherwise expand
 * (`%` specifiers, `$` variables) doubled.
 */
export function unitArgument(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$')}"`;
}

/** A path setting (WorkingDirectory=): specifiers doubled; systemd does not unquote these. */
function unitPath(value: string): string {
  if (/[\s"'\\]/.test(value)) throw new Error(`systemd cannot take the path ${JSON.stringify(value)} in WorkingDirectory= (spaces, quotes or backslashes): move the install`);
  return value.replace(/%/g, '%%');
}

export interface UnitOptions {
  /** Absolute path of the config, or undefined for the built-in defaults. */
  config: string | undefined;
  user: string;
  watchdogS: number;
  root: string;
  node: string;
  version: string;
  /**
   * Whether the daemon can send systemd notifications here (the native addon loads). Without
   * them a Type=notify unit never becomes ready and systemd kills it at TimeoutStartSec, and a
   * watchdog would kill it every period: such an install gets Type=simple and no watchdog.
   */
  notify: boolean;
}

const NOTIFY_SERVICE = `Type=notify
# READY, STATUS, WATCHDOG and STOPPING come from the daemon's own process (bin/moead-edge and
# scripts/daemon-node.sh exec node, with the V8 flags and MOEAD_MALLOC the daemon runs with).
NotifyAccess=main`;

const SIMPLE_SERVICE = `# Type=simple and no watchdog: the native addon, which sends systemd's notifications, did not
# load when this unit was written. Build it (node scripts/build-native.mjs) and write the unit
# again for readiness and keep-alives.
Type=simple`;

export function systemdUnit(o: UnitOptions): string {
  const exec = ['/bin/sh', `${o.root}/bin/moead-edge`, 'run', ...(o.config ? ['--config', o.config] : [])].map(unitArgument).join(' ');
  return `# moead-edge ${o.version}, written by \`moead-edge systemd-unit\`. Paths are this install's.
[Unit]
Description=moead-edge visual anomaly detection daemon
Documentation=file://${o.root.replace(/%/g, '%%')}/docs/cli.md
Wants=network-online.target
After=network-online.target
# Five failed starts within ten minutes: stop retrying (systemctl status says why).
StartLimitIntervalSec=10min
StartLimitBurst=5

[Service]
${o.notify ? NOTIFY_SERVICE : SIMPLE_SERVICE}
ExecStart=${exec}
ExecReload=/bin/kill -HUP $MAINPID
WorkingDirectory=${unitPath(o.root)}
User=${o.user}
Environment=${unitArgument(`MOEAD_NODE=${o.node}`)}
# The default stateDir ($XDG_STATE_HOME/moead-edge): seq numbers and the MQTT outbox survive in
# /var/lib/moead-edge, created by systemd for the service's user.
Environment=XDG_STATE_HOME=/var/lib
StateDirectory=moead-edge
# A first start on a Jetson builds the TensorRT engine (minutes); later starts load it from the cache.
TimeoutStartSec=20min
# A stop finishes the frames in flight and delivers what the outbox can; then SIGKILL.
TimeoutStopSec=60s
KillMode=mixed
${o.notify && o.watchdogS > 0 ? `# No keep-alive for this long (a hung event loop, or inference stuck past inference.stuckTimeoutS): SIGABRT, then a restart.\nWatchdogSec=${o.watchdogS}s\n` : ''}Restart=on-failure
RestartSec=5s

[Install]
WantedBy=multi-user.target
`;
}

export async function systemdUnitCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    { config: { type: 'string', short: 'c' }, user: { type: 'string' }, watchdog: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    SYSTEMD_UNIT_USAGE,
  );
  if (values.help) {
    console.log(SYSTEMD_UNIT_USAGE);
    return EXIT.ok;
  }
  const user = values.user ?? 'root';
  if (!USER_NAME.test(user)) {
    console.error(`moead-edge: --user: expected an account name (letters, digits, _ and -), received ${JSON.stringify(user)}`);
    return EXIT.failed;
  }
  const watchdogS = numberOption(values.watchdog, 'watchdog', SYSTEMD_UNIT_USAGE, (n) => Number.isInteger(n) && n >= 0 && n <= 3600, 'whole seconds from 0 to 3600') ?? 30;
  const config = values.config === undefined ? undefined : resolve(values.config);
  if (config !== undefined) {
    // A unit that points at a broken config would fail at boot, away from anyone watching.
    try {
      // As the service will see it: without this shell's MOEAD_* overrides.
      await loadConfig(config, Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('MOEAD_'))));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      console.error(err.message);
      return EXIT.failed;
    }
  }
  let notify = true;
  try {
    if (typeof loadNative().sdNotify !== 'function') throw new Error('the addon has no sdNotify: rebuild it');
  } catch (err) {
    notify = false;
    console.error(`moead-edge: warning: the daemon cannot notify systemd from this install, so the unit uses Type=simple without a watchdog: ${errorMessage(err)}`);
  }
  process.stdout.write(systemdUnit({ config, user, watchdogS, root: PACKAGE_ROOT.replace(/\/$/, ''), node: process.execPath, version: packageVersion(), notify }));
  return EXIT.ok;
}
