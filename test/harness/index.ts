/**
 * Shared test helpers: a real Mosquitto broker, an MQTT collector, temporary folders, child
 * processes (the CLI included), a service manager's notification socket and an HTTP file
 * server. Import from here: `../harness/index.js`.
 */
export { Mosquitto, withMosquitto, type MosquittoOptions } from './mosquitto.js';
export { MqttCollector, topicMatches, type ReceivedMessage, type MessageMatch, type WaitOptions } from './subscriber.js';
export { tempDir, withTempDir, type TempDir } from './tmp.js';
export { withSmallDisk, smallDiskSkip, type SmallDisk } from './small-disk.js';
export { freePort, waitForPort } from './net.js';
export {
  ChildHandle,
  spawnProcess,
  spawnCli,
  runCli,
  runProcess,
  DAEMON_NODE_SCRIPT,
  type CliResult,
  type ExitStatus,
  type OutputLine,
  type SpawnOptions,
} from './process.js';
export { REPO_ROOT, CLI_MAIN, repoPath } from './paths.js';
export { rng } from './random.js';
export { NotifySocket, type Notification } from './notify-socket.js';
export { FileServer, type Fault } from './file-server.js';
export { WallClock } from './wall-clock.js';
export { PNG_SIGNATURE, encodePng, filterRows, ihdrChunk, pngChunk, pngFile, type PngHeader } from './png.js';
