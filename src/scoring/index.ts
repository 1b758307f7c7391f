/** The scoring concern: per-frame decisions, events with hysteresis, persisted sequence numbers. */
export { decide, thresholdFor, checkThreshold, thresholdProblems, ThresholdError, type Decision } from './decide.js';
export { EventTracker, type HysteresisOptions, type ScoredFrame } from './hysteresis.js';
export { CameraSeq, SeqStoreError } from './seq.js';
export { OpenEventFile, type OpenEventRecord } from './open-event.js';
