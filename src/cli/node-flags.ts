/**
 * Node/V8 flags the daemon runs with. `npm start`, `npm run bench` and the test harness start
 * Node through scripts/daemon-node.sh, which passes them (a test runs the script and checks
 * each one). V8 reads them only at start-up, so they cannot be set from inside the process.
 *
 * --max-semi-space-size=4: V8 grows its young generation towards 16 MiB per semi-space
 * while a program allocates; the daemon allocates small objects for every frame, so its
 * RSS climbed for the first 2-3 minutes (243 → 259 MiB at 10 fps) and then stayed flat
 * for half an hour. At 4 MiB it starts and stays near 223 MiB; the extra scavenges were not
 * measurable in the pipeline benchmark.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
