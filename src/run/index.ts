export { PROFILES, RunContext, readJson, resolveConfig, runExperiment } from './context.js';
export type { Experiment, LandedRun, Profile, RunOptions } from './context.js';
export { writeAtomic, writeJsonAtomic } from './files.js';
export { PROJECT_ROOT, gitCommit, gitState, packageVersions } from './manifest.js';
export { epochProgress } from './progress.js';
export type { EpochProgress } from './progress.js';
export { loadModel, modelSummary, saveModel } from './models.js';
export { finishedParts, hasCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
