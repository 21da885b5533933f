export { type Annotation, readAnnotations, writeAnnotations } from './annotations.js';
export { AdapterContractError, EvalInputError, JudgeRequestError, ResumeMismatchError } from './errors.js';
export { readJson, writeFileAtomic, writeJson } from './json-file.js';
export { mean, quantileSorted, roundHalfEven, standardError, sum } from './stats.js';
export { codePointLength, discreteWinRate, WIN_RATE_KEYS, type WinRateStats, winRate } from './win-rate.js';
