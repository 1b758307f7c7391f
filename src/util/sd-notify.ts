/**
 * systemd's notification protocol (sd_notify(3)) for a unit with `Type=notify` and
 * `WatchdogSec=` (`moead-edge systemd-unit` writes one):
 *
 * - `READY=1` once the cameras run and `online` is published, so `systemctl start` returns
 *   when the daemon really serves, and units ordered after it start then;
 * - `WATCHDOG=1` every half watchdog period while the daemon is healthy. An event loop that
 *   hangs sends nothing, and a model that stopped answering (a camera in `inference_stuck`)
 *   withholds the keep-alive on purpose: systemd then kills and restarts the daemon, the one
 *   cure for a wedged inference thread on an unattended board;
 * - `STATUS=` lines that `systemctl status` shows (online, why keep-alives stopped);
 * - `STOPPING=1` when a stop begins.
 *
 * Without NOTIFY_SOCKET (not started by systemd, or `Type=simple`) everything here is a no-op.
 */
import { z } from 'zod';
import { errorMessage, type Logger } from './log.js';

/** Sends one datagram to the socket; throws with the reason when it cannot. */
export type NotifySend = (socket: string, message: string) => void;

const microseconds = z.string().regex(/^\d+$/, 'expected a whole number of microseconds').transform(Number);

/** The variables systemd sets for the service's main process. */
const ServiceEnvSchema = z.object({
  NOTIFY_SOCKET: z.string().min(1).optional(),
  WATCHDOG_USEC: microseconds.pipe(z.number().int().positive()).optional(),
  WATCHDOG_PID: z.string().regex(/^\d+$/, 'expected a process id').transform(Number).optional(),
});

/** Why keep-alives should stop (the daemon cannot recover by itself), or undefined when healthy. */
export type HealthCheck = () => string | undefined;

export interface ServiceNotifier {
  /** True when a service manager asked for notifications and they can be sent. */
  readonly active: boolean;
  /** Milliseconds between keep-alives; undefined when no watchdog was asked for. */
  readonly keepAliveMs: number | undefined;
  ready(status: string): void;
  status(text: string): void;
  stopping(status: string): void;
  /** Starts the keep-alives (when a watchdog was asked for), each sent only if `health` passes. */
  watch(health: HealthCheck): void;
  close(): void;
}

export interface NotifierOptions {
  env: NodeJS.ProcessEnv;
  pid: number;
  /** The transport, resolved only when NOTIFY_SOCKET is set (it needs the native addon). */
  transport: () => NotifySend;
  log: Logger;
}

const INACTIVE: ServiceNotifier = {
  active: false,
  keepAliveMs: undefined,
  ready: () => undefined,
  status: () => undefined,
  stopping: () => undefined,
  watch: () => undefined,
  close: () => undefined,
};

/**
 * Reads (and removes, as libsystemd does, so that capture child processes do not inherit
 * them) NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID.
 */
export function serviceNotifier({ env, pid, transport, log }: NotifierOptions): ServiceNotifier {
  const parsed = ServiceEnvSchema.safeParse({ NOTIFY_SOCKET: env.NOTIFY_SOCKET, WATCHDOG_USEC: env.WATCHDOG_USEC, WATCHDOG_PID: env.WATCHDOG_PID });
  delete env.NOTIFY_SOCKET;
  delete env.WATCHDOG_USEC;
  delete env.WATCHDOG_PID;
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    log.error(`systemd's environment is malformed (${problems}); no notifications are sent`);
    return INACTIVE;
  }
  const { NOTIFY_SOCKET: socket, WATCHDOG_USEC: watchdogUs, WATCHDOG_PID: watchdogPid } = parsed.data;
  if (socket === undefined) return INACTIVE;
  let send: NotifySend;
  try {
    send = transport();
  } catch (err) {
    // With Type=notify, systemd will time the start out and say so; this line says why.
    log.error(`systemd asked for notifications on ${socket}, but they cannot be sent: ${errorMessage(err)}`);
    return INACTIVE;
  }

  // A failing socket would fail every keep-alive: say so once, and once more when it recovers.
  let failing = false;
  const notify = (fields: Record<string, string>) => {
    const message = Object.entries(fields)
      .map(([key, value]) => `${key}=${value.replace(/\n/g, ' ')}`)
      .join('\n');
    try {
      send(socket, message);
      if (failing) log.info(`notifications reach ${socket} again`);
      failing = false;
    } catch (err) {
      if (!failing) log.warn(`notification not sent (${Object.keys(fields).join(', ')}): ${errorMessage(err)}`);
      failing = true;
    }
  };

  // WATCHDOG_PID names the process the watchdog is for; another one's is not ours to feed.
  const keepAliveMs = watchdogUs !== undefined && (watchdogPid === undefined || watchdogPid === pid) ? Math.max(1, Math.floor(watchdogUs / 2000)) : undefined;
  let timer: NodeJS.Timeout | undefined;
  return {
    active: true,
    keepAliveMs,
    ready: (status) => notify({ READY: '1', STATUS: status }),
    status: (text) => notify({ STATUS: text }),
    stopping: (status) => notify({ STOPPING: '1', STATUS: status }),
    watch(health) {
      if (keepAliveMs === undefined || timer !== undefined) return;
      let withheld: string | undefined;
      timer = setInterval(() => {
        const problem = health();
        if (problem === undefined) {
          notify(withheld === undefined ? { WATCHDOG: '1' } : { WATCHDOG: '1', STATUS: 'healthy again' });
          if (withheld !== undefined) log.info('keep-alives resume: the daemon is healthy again');
          withheld = undefined;
        } else if (problem !== withheld) {
          withheld = problem;
          log.error(`withholding systemd's keep-alive, so that systemd restarts the daemon: ${problem}`);
          notify({ STATUS: `unhealthy: ${problem}` });
        }
      }, keepAliveMs);
      timer.unref();
    },
    close() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
