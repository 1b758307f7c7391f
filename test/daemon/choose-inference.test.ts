/** Backend, providers and threads: the config's where the user set them, else the board profile's. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigStore, loadBoard, validateConfigText } from '../../src/config/index.js';
import { chooseInference } from '../../src/daemon/daemon.js';

test('board defaults unless the config sets the key; precision always from the board', async () => {
  const orin = await loadBoard('jetson-orin-nano');
  const fromBoard = new ConfigStore(validateConfigText('board: jetson-orin-nano\n', '/etc/moead/c.yaml', {}), {});
  assert.deepEqual(chooseInference(fromBoard.current, orin, fromBoard), {
    backend: 'native',
    board: 'jetson-orin-nano',
    backendFrom: 'board',
    options: { providers: ['tensorrt', 'cuda', 'cpu'], threads: 6, spinning: false, precision: 'int8', cacheDir: `${fromBoard.current.stateDir}/engines` },
  });
  const own = new ConfigStore(validateConfigText('board: jetson-orin-nano\ninference: {backend: onnxruntime, threads: 2, spinning: true}\n', '/etc/moead/c.yaml', {}), {});
  const choice = chooseInference(own.current, orin, own);
  assert.equal(choice.backend, 'onnxruntime');
  assert.equal(choice.options.spinning, true);
  assert.equal(choice.backendFrom, 'config');
  assert.equal(choice.options.threads, 2);
  assert.deepEqual(choice.options.providers, ['tensorrt', 'cuda', 'cpu'], 'providers not set: the board');
  assert.equal(choice.options.precision, 'int8');
  const nano = await loadBoard('jetson-nano');
  assert.equal(chooseInference(own.current, nano, own).options.precision, 'fp16');
});
