/**
 * The device is described again (discovery, Sparkplug births) when the model in force
 * changes, once per change, and not at OTA reports that name the same model.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { modelChangeAnnouncer } from '../../src/daemon/model-announcer.js';

test('announced once per change of the model in force, not at each report naming the same one', () => {
  let announced = 0;
  const reported = modelChangeAnnouncer({ name: 'line3', version: '2.4.0' }, () => (announced += 1));
  // Start-up reports name the model the link announced as it connected.
  reported({ name: 'line3', version: '2.4.0' });
  assert.equal(announced, 0);
  // An update switches: probation, then a probation whose end cannot be saved reports again and again.
  for (let i = 0; i < 5; i++) reported({ name: 'line3', version: '2.5.0' });
  assert.equal(announced, 1);
  // Rolled back, then forward again by a second rollback-model.
  reported({ name: 'line3', version: '2.4.0' });
  reported({ name: 'line3', version: '2.4.0' });
  reported({ name: 'line3', version: '2.5.0' });
  assert.equal(announced, 3);
  // Another model of the same version is another model.
  reported({ name: 'line4', version: '2.5.0' });
  assert.equal(announced, 4);
});
