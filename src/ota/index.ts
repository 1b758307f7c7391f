/** Over-the-air model updates: signed bundles downloaded, validated, switched and rolled back. */
export { OtaConfigSchema, type OtaConfig } from './config.js';
export { ModelStore, describeRecovery, type StartupRecovery } from './model-store.js';
export { ModelUpdater, type ModelUpdaterDeps, type OtaStatus, type UpdateRequest } from './updater.js';
export { SIGNATURE_FILE, generateSigningKey, signManifest, verifyManifest } from './signature.js';
export { measureReferenceFrames, type ReferenceCheck } from './validate.js';
