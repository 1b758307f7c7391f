/** The config concern: schema, loading with environment overrides, board profiles, runtime changes. */
export { ConfigSchema, ScoringConfigSchema, TelemetryConfigSchema, DEFAULT_CAMERAS, DEFAULT_STATE_DIR, type Config, type ConfigInput, type ScoringConfig } from './schema.js';
export { loadConfig, validateConfigText, validateConfig, parseConfigText, configFileFrom, DEFAULTS_SOURCE, type LoadedConfig } from './load.js';
export { ConfigError, describeIssues, formatKeyPath } from './errors.js';
export { envOverrides, applyOverrides, ENV_PREFIX, CONFIG_ENV, type EnvOverride } from './env.js';
export { ConfigStore, LIVE_KEYS, type ConfigChange, type ConfigCheck } from './store.js';
export { BoardProfileSchema, loadBoard, listBoards, BoardError, BOARDS_DIR, DEFAULT_BOARD, type BoardProfile } from './board.js';
