import { isMainThread } from 'node:worker_threads';

/**
 * The environment variables that turn onnxruntime's telemetry off, read when the first session of
 * the process is created: `ORT_DISABLE_TELEMETRY` (onnxruntime 1.29 and 1.30, onnxruntime-node's
 * version here) and `ORT_TELEMETRY_DISABLED` (the name later versions read).
 *
 * @example
 * import { ORT_TELEMETRY_VARIABLES } from '@implicit-it/runtime';
 * ORT_TELEMETRY_VARIABLES; // ['ORT_DISABLE_TELEMETRY', 'ORT_TELEMETRY_DISABLED']
 */
export const ORT_TELEMETRY_VARIABLES = ['ORT_DISABLE_TELEMETRY', 'ORT_TELEMETRY_DISABLED'] as const;

/**
 * Whether onnxruntime's telemetry is off in this process (see `disableOnnxTelemetry`) and who decided:
 * this package (neither variable was set) or the environment (`variable` was set before, to `value`).
 *
 * @example
 * const state: OnnxTelemetry = disableOnnxTelemetry();
 * if (!state.disabled) console.warn(`onnxruntime telemetry is on (${state.variable}=${state.value})`);
 */
export interface OnnxTelemetry {
  disabled: boolean;
  setBy: 'implicit-it' | 'environment';
  /** the first of ORT_TELEMETRY_VARIABLES that is set (after this package set them, the first) */
  variable: (typeof ORT_TELEMETRY_VARIABLES)[number];
  value: string;
}

/** onnxruntime's reading of the variable: 1, true, yes, on or y (any case, spaces around) turn it off. */
const truthy = (value: string) => ['1', 'true', 'yes', 'on', 'y'].includes(value.trim().toLowerCase());

let decided: OnnxTelemetry | undefined;

/**
 * Turns onnxruntime's telemetry off for this process unless the environment decided already (either
 * of `ORT_TELEMETRY_VARIABLES` set: `ORT_DISABLE_TELEMETRY=0` keeps it on; the value is copied to the
 * other name, so that it holds whichever onnxruntime version runs), and says which holds.
 * Since 1.29 the Linux and macOS builds of onnxruntime, onnxruntime-node's included, send usage events
 * to Microsoft (`mobile.events.data.microsoft.com`), queue them in a SQLite file under
 * `~/.cache/Microsoft/DeveloperTools/.onnxruntime` beside a persistent device id, and leave a
 * `mat-debug-PID.log` in the temporary directory of each process that creates a session. A toolkit
 * that serves and evaluates models should not report on its users unasked, so `loadModel` and
 * `loadModelInWorker` call this before their first session. onnxruntime decides once, when the first
 * session of the process is created: a session created earlier (by another library) has decided
 * already. A worker thread's `process.env` is its own copy, which onnxruntime does not read: there
 * the variables are only read, not set (`loadModelInWorker` calls this on the calling thread).
 *
 * @example
 * disableOnnxTelemetry().disabled; // true
 */
export function disableOnnxTelemetry(): OnnxTelemetry {
  if (decided) return { ...decided };
  const isSet = (name: string) => (process.env[name] ?? '').trim() !== '';
  const given = ORT_TELEMETRY_VARIABLES.find(isSet);
  let state: OnnxTelemetry;
  if (given === undefined && isMainThread) {
    for (const name of ORT_TELEMETRY_VARIABLES) process.env[name] = '1';
    state = { disabled: true, setBy: 'implicit-it', variable: ORT_TELEMETRY_VARIABLES[0], value: '1' };
  } else {
    const variable = given ?? ORT_TELEMETRY_VARIABLES[0];
    const value = process.env[variable] ?? '';
    // the choice made under one name holds under the other: each onnxruntime version reads one
    if (given !== undefined && isMainThread)
      for (const name of ORT_TELEMETRY_VARIABLES) if (!isSet(name)) process.env[name] = value;
    state = { disabled: truthy(value), setBy: 'environment', variable, value };
  }
  // a worker thread reads again: the main thread may set the variables later
  if (isMainThread) decided = state;
  return { ...state };
}
