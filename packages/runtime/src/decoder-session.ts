import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type * as Ort from 'onnxruntime-node';
import { GenerationError, ModelLoadError } from './errors.js';
import { halvesToFloats } from './float16.js';
import type { ModelFiles } from './model-dir.js';
import {
  LOGITS_START_INPUT,
  logSumExpModel,
  NEW_KV_PREFIX,
  type PositionTable,
  patchDecoderGraph,
  positionTable,
} from './onnx-patch.js';
import { onnxruntime } from './onnxruntime.js';
import { chooseProviders, type ExecutionProvider, type ProviderStatus } from './providers.js';
import { disableOnnxTelemetry } from './telemetry.js';

/**
 * Session options of `loadModel`.
 *
 * @example
 * const session: SessionOptions = { executionProvider: 'cpu', intraOpThreads: 4, log: (line) => console.error(line) };
 * const model = await loadModel(modelDir, { ...session, rules: 'hewitt2024' });
 */
export interface SessionOptions {
  /** `auto` (default): CUDA when usable, else CPU. */
  executionProvider?: ExecutionProvider | 'auto' | undefined;
  /** Threads inside one operator (default: onnxruntime's choice, the physical cores). */
  intraOpThreads?: number | undefined;
  /**
   * Threads running independent nodes of the graph at once (default: none, nodes run one after
   * another). Set (1 or more), the session runs in onnxruntime's parallel execution mode, the only one
   * that reads this count; a decoder's graph has few independent branches, so it seldom helps.
   */
  interOpThreads?: number | undefined;
  /**
   * Compute the LM head only where logits are needed (default true): the graph is patched in memory
   * with a Slice before the LM head. Set false to run the graph exactly as exported.
   */
  sliceLogits?: boolean | undefined;
  /**
   * Let the engine keep the KV cache in its own buffers (default true): the graph is patched in memory
   * with outputs for each step's new keys/values, so a step copies those out of onnxruntime instead of
   * the whole `present.*` cache (a merged decoder's `If` branches are patched too). Set false (or use
   * a graph the patch does not apply to) to feed `present.*` back as exported.
   */
  cacheOutputs?: boolean | undefined;
  /**
   * With the cache in the engine's buffers: attend to the cached and the new keys/values separately
   * (default true), so that no step copies the whole cache into a `present.*` Concat inside onnxruntime.
   * The graph is patched in memory and loses its `present.*` outputs; graphs the patch does not fit, or
   * whose patched form fails its check at load (`checkSplitAttention`), keep their attention, with a
   * log line. Results agree with the exported attention to float rounding (the same products, summed
   * in another order).
   */
  splitAttention?: boolean | undefined;
  /**
   * With split attention, where the graph repeats KV heads for grouped-query attention (Hugging Face's
   * `repeat_kv`: Unsqueeze, Expand, Reshape, as in optimum's exports), drop the repeat and view the
   * queries as KV-head groups instead (default true): the repeat copies the cache once per query head
   * at every step.
   */
  groupQueries?: boolean | undefined;
  /**
   * Set the `accuracy_level` of the graph's `MatMulNBits` nodes (the linear layers of 4-bit exports,
   * `dtype: 'q4'`): 0 computes in float32 on the dequantized weights, which is what onnxruntime's
   * quantizer writes by default (and transformers.js runs); 4 computes in int8, rounding the
   * activations to 8 bits per block, onnxruntime's fastest CPU path (on 2 CPU cores, a 4-bit LM head
   * of SmolLM2's shape took 0.95 ms a step instead of 5.7 ms). Default: as exported. Results change
   * slightly; graphs without such nodes are left as they are, with a log line. A merged decoder's
   * nodes (in its `If` branches) are set too.
   */
  q4AccuracyLevel?: 0 | 1 | 2 | 3 | 4 | undefined;
  /**
   * Profile onnxruntime: a path prefix. onnxruntime then writes a Chrome trace (one event per kernel
   * run, with its op type and duration; open it in chrome://tracing or Perfetto) to
   * `<profile>_<date>.json`, which `Model.endProfiling()` finishes and names. For finding where step
   * time goes; profiling slows every kernel run a little, so small kernels look larger than they are.
   */
  profile?: string | undefined;
  /**
   * What onnxruntime itself writes to stderr (default `error`, as transformers.js does: its warnings at
   * load are about graph clean-ups, e.g. an initializer no node reads). `verbose` or `info` for
   * debugging a graph or a provider.
   */
  onnxLogLevel?: OnnxLogLevel | undefined;
  /** Receives one line per notable event (the provider chosen, a patch skipped). */
  log?: ((line: string) => void) | undefined;
}

/**
 * onnxruntime's log severities, in its order (0 verbose ... 4 fatal).
 *
 * @example
 * const level = process.env.ORT_LOG ?? 'error';
 * if (!(ONNX_LOG_LEVELS as readonly string[]).includes(level))
 *   throw new Error(`ORT_LOG: expected one of ${ONNX_LOG_LEVELS.join(', ')}, got ${level}`);
 */
export const ONNX_LOG_LEVELS = ['verbose', 'info', 'warning', 'error', 'fatal'] as const;
/**
 * How much onnxruntime writes to stderr (`SessionOptions.onnxLogLevel`): one of `ONNX_LOG_LEVELS`.
 *
 * @example
 * const onnxLogLevel: OnnxLogLevel = process.env.DEBUG ? 'verbose' : 'error';
 * const model = await loadModel(modelDir, { onnxLogLevel });
 */
export type OnnxLogLevel = (typeof ONNX_LOG_LEVELS)[number];

type Tensor = Ort.Tensor;

/** One forward step's inputs. Arrays are row-major [batch, seq] / [batch, total]. */
export interface StepInputs {
  batch: number;
  seq: number;
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  positionIds: BigInt64Array;
  /** past key/values per layer (key, value, key, value...), or null for the first step */
  past: Tensor[] | null;
  /** First position whose logits are needed: -1 = only the last (generation), 0 = all (scoring). */
  logitsFrom: number;
  /**
   * Cache outputs to fetch: `present` (default) the whole `present.*`, `new` only this step's keys and
   * values (needs `cacheMode === 'slots'`), `none` none (scoring, the no-cache loop).
   */
  fetch?: 'present' | 'new' | 'none';
}

/** A step's outputs: logits as float32 [batch, kept, vocab] and the cache outputs asked for. */
export interface StepOutputs {
  logits: Float32Array;
  /** Positions per row in `logits` (1 when only the last was computed). */
  kept: number;
  vocab: number;
  /** per layer (key, value, ...): `present.*` [batch, kvHeads, total, headDim], or the new [batch, kvHeads, seq, headDim], or [] */
  kv: Tensor[];
}

/**
 * An onnxruntime session over a decoder in the optimum / transformers.js layout, with its interface
 * discovered from the graph.
 *
 * @example
 * const session = await DecoderSession.create(resolveModelFiles(modelDir), { executionProvider: 'cpu' });
 * console.log(session.provider, session.attention, session.cacheMode); // e.g. cpu split slots
 * await session.release();
 */
export class DecoderSession {
  readonly provider: ExecutionProvider;
  readonly layers: number;
  /** The model's vocabulary size (config.json's `vocab_size`). */
  private readonly vocabSize: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly kvType: 'float32' | 'float16';
  readonly hasPositionIds: boolean;
  readonly hasUseCacheBranch: boolean;
  /**
   * The graph's table of positions with the fewest rows (rotary cos/sin written as a constant,
   * learned position embeddings): positions at or past its `rows` fail in onnxruntime. Null where
   * the graph has none (rotary angles computed at run time).
   */
  readonly positionTable: PositionTable | null;
  /** How logits are limited to the needed positions: our patch, the graph's own input, or not at all. */
  readonly logitsMode: 'patched' | 'num_logits_to_keep' | 'all';
  /**
   * The `accuracy_level` the graph's MatMulNBits nodes run at (`q4AccuracyLevel`, else as exported; the
   * highest where they differ), or null: none, or the graph was not read (nothing patched).
   */
  readonly q4AccuracyLevel: number | null;
  /**
   * Whether the graph rounds activations to 8 bits with one scale per tensor at run time
   * (`DynamicQuantizeLinear`, as 8-bit exports have it): a row's logits then move a little with the
   * other rows and positions of its run (batching, prompt chunks), where a float graph's do not.
   * False where the graph was not read (nothing patched), as `q4AccuracyLevel` is null there.
   */
  readonly dynamicQuantization: boolean;
  /**
   * How the engine keeps the cache: `slots` in its own buffers, fetching each step's new keys/values
   * (patched graph), or `present` fed back whole.
   */
  readonly cacheMode: 'slots' | 'present';
  /**
   * `split`: attention over the cache and the new keys/values separately (patched graph without
   * `present.*`; see `SessionOptions.splitAttention`); `grouped`: split, and repeat_kv replaced by
   * grouped queries (`SessionOptions.groupQueries`); `exported`: as in the graph.
   */
  readonly attention: 'exported' | 'split' | 'grouped';
  /** Whether attention is split (`attention` is `split` or `grouped`). */
  get splitAttention(): boolean {
    return this.attention !== 'exported';
  }
  private readonly pastNames: string[];
  private readonly presentNames: string[];
  /**
   * The sessions of `logSumExpModel`: on the calling thread alone (`alone`) and on as many threads as
   * this session (`pooled`), each opened by the first `logSumExp` call that needs it.
   */
  private readonly lse = new Map<'alone' | 'pooled', Promise<Ort.InferenceSession>>();
  /** The cache outputs of each `StepInputs.fetch` choice. */
  private readonly kvNames: Record<'present' | 'new' | 'none', string[]>;

  private constructor(
    private readonly session: Ort.InferenceSession,
    provider: ExecutionProvider,
    files: ModelFiles,
    patched: {
      logits: boolean;
      kv: boolean;
      split: boolean;
      grouped: boolean;
      q4Level: number | null;
      dynamicQuantization: boolean;
    },
    private profile: string | null,
    table: PositionTable | null,
    /** The intra-op threads this session was created with (the pooled log-sum-exp session takes as many). */
    private readonly intraOpThreads: number | undefined,
  ) {
    this.provider = provider;
    this.positionTable = table;
    const inputs = session.inputNames;
    const file = files.onnxFile;
    for (const required of ['input_ids', 'attention_mask', 'logits']) {
      const names = required === 'logits' ? session.outputNames : inputs;
      if (!names.includes(required)) {
        throw new ModelLoadError(
          'runtime.bad_graph',
          `${file}: the graph has no ${required === 'logits' ? 'output' : 'input'} "${required}" (found ${names.join(', ')}); expected a decoder exported by optimum / for transformers.js`,
          { file },
        );
      }
    }
    this.pastNames = inputs.filter((n) => n.startsWith('past_key_values.'));
    this.presentNames = this.pastNames.map((n) => n.replace('past_key_values.', 'present.'));
    const newNames = this.pastNames.map((n) => n.replace('past_key_values.', NEW_KV_PREFIX));
    // a graph saved after this patch ("already patched") has its interface: the logits-start input,
    // the new keys/values outputs, and (split) no present.* outputs; it runs as patched
    const outputs = session.outputNames;
    const savedKv = this.pastNames.length > 0 && newNames.every((n) => outputs.includes(n));
    const savedSplit = savedKv && !this.presentNames.some((n) => outputs.includes(n));
    patched = {
      ...patched,
      logits: patched.logits || inputs.includes(LOGITS_START_INPUT),
      kv: patched.kv || savedKv,
      split: patched.split || savedSplit,
    };
    // a split-attention graph has no present.* outputs: the patch removed them after checking them
    const missing = patched.split
      ? undefined
      : this.presentNames.find((n) => !session.outputNames.includes(n));
    if (this.pastNames.length === 0 || missing) {
      throw new ModelLoadError(
        'runtime.no_kv_cache',
        `${file}: the graph has no KV cache (${missing ? `output ${missing} missing` : 'no past_key_values.* inputs'}); export the model with past key values ("text-generation-with-past")`,
        { file },
      );
    }
    this.layers = this.pastNames.length / 2;
    this.vocabSize = files.config.vocab_size;
    const logitsMeta = session.outputMetadata.find((m) => m.name === 'logits');
    const graphVocab = logitsMeta?.isTensor ? logitsMeta.shape.at(-1) : undefined;
    if (typeof graphVocab === 'number' && graphVocab !== this.vocabSize) {
      throw new ModelLoadError(
        'runtime.bad_config',
        `${join(files.dir, 'config.json')}: "vocab_size" is ${this.vocabSize}, but the logits of ${file} have ${graphVocab} ids; the config is not this graph's`,
        { file: join(files.dir, 'config.json') },
      );
    }
    const meta = session.inputMetadata.find((m) => m.name === this.pastNames[0]);
    const shape = meta?.isTensor ? meta.shape : [];
    const dim = (i: number, fallback: number) =>
      typeof shape[i] === 'number' ? (shape[i] as number) : fallback;
    // the engine feeds a past of 0 positions first, then one more a step: a fixed length fails every run
    const fixed = shape[2];
    if (typeof fixed === 'number' && fixed > 0) {
      throw new ModelLoadError(
        'runtime.bad_graph',
        `${file}: input ${this.pastNames[0]} has a fixed length of ${fixed} cache positions ([${shape.join(', ')}]), as static-cache exports have it; this engine grows the cache a position per step and needs a dynamic past_sequence_length (optimum's "text-generation-with-past" export)`,
        { file },
      );
    }
    this.kvHeads = dim(1, files.config.num_key_value_heads);
    this.headDim = dim(3, files.config.head_dim);
    this.kvType = meta?.isTensor && meta.type === 'float16' ? 'float16' : 'float32';
    this.hasPositionIds = inputs.includes('position_ids');
    this.hasUseCacheBranch = inputs.includes('use_cache_branch');
    this.cacheMode =
      patched.kv && newNames.every((n) => session.outputNames.includes(n)) ? 'slots' : 'present';
    this.attention =
      patched.split && this.cacheMode === 'slots' ? (patched.grouped ? 'grouped' : 'split') : 'exported';
    this.kvNames = { present: this.presentNames, new: newNames, none: [] };
    this.q4AccuracyLevel = patched.q4Level;
    this.dynamicQuantization = patched.dynamicQuantization;
    this.logitsMode = patched.logits
      ? 'patched'
      : inputs.includes('num_logits_to_keep')
        ? 'num_logits_to_keep'
        : 'all';
  }

  /**
   * Creates the session, trying execution providers by priority (CUDA, then CPU). The graph is patched
   * in memory as the options ask; a patched graph that does not load, or whose split attention does not
   * hold (`checkSplitAttention`), steps back to less patching, with a log line each time: first no
   * regrouped queries, then attention as exported, then the graph as exported.
   */
  static async create(files: ModelFiles, options: SessionOptions = {}): Promise<DecoderSession> {
    const log = options.log ?? (() => {});
    const { order, skipped, doubts } = chooseProviders(options.executionProvider ?? 'auto');
    // a provider named without its binaries: no graph would load, so none is read or patched
    if (order.length === 0) throw noProviderError(files, [], skipped);
    let current = options;
    let quiet = false; // what the patch could not do is logged once, by the first attempt
    for (;;) {
      const opened = await DecoderSession.open(
        files,
        current,
        order,
        skipped,
        quiet ? () => {} : log,
        doubts,
      );
      quiet = true;
      if ('error' in opened) {
        if (!opened.patched) throw opened.error;
        log(`graph as exported (the patched graph did not load: ${opened.reason})`);
        const { q4AccuracyLevel: _, ...unpatched } = options;
        current = { ...unpatched, sliceLogits: false, cacheOutputs: false };
        continue;
      }
      const { session, failures } = opened;
      let problem: string | null;
      // the session is the caller's once returned: until then, a failure (the reference graph of the
      // check not opening, a `log` that throws) frees it
      try {
        problem = session.splitAttention ? await DecoderSession.checkSplit(session, files, current) : null;
        if (problem === null) {
          const why = failures.length
            ? ` (skipped: ${failures.map((f) => `${f.name}: ${f.reason}`).join('; ')})`
            : '';
          const threads = options.intraOpThreads ? `, intra-op threads: ${options.intraOpThreads}` : '';
          log(`execution provider: ${session.provider}${threads}${why}`);
          return session;
        }
      } catch (error) {
        await session.release();
        throw error;
      }
      await session.release();
      if (session.attention === 'grouped') {
        log(`KV heads repeated at every step (queries not regrouped: ${problem})`);
        current = { ...current, groupQueries: false };
      } else {
        log(`KV cache concatenated inside onnxruntime at every step (attention not split: ${problem})`);
        current = { ...current, splitAttention: false };
      }
    }
  }

  /**
   * `checkSplitAttention` as `create` runs it: a graph that rounds activations per tensor
   * (`dynamicQuantization`) is compared with its unpatched self on the same provider, opened for the
   * check and released after it (or, should that not open, with the looser whole-pass tolerance).
   */
  private static async checkSplit(
    session: DecoderSession,
    files: ModelFiles,
    options: SessionOptions,
  ): Promise<string | null> {
    if (!session.dynamicQuantization) return checkSplitAttention(session);
    // not profiled: its kernels are not the model's, and its trace would be left unfinished
    const unpatched = { ...options, sliceLogits: false, cacheOutputs: false, profile: undefined };
    const opened = await DecoderSession.open(files, unpatched, [session.provider], [], () => {});
    if ('error' in opened) return checkSplitAttention(session);
    try {
      return await checkSplitAttention(session, opened.session);
    } finally {
      await opened.session.release();
    }
  }

  /** Patches the graph as asked (logging what could not be) and opens it with the first provider that works. */
  private static async open(
    files: ModelFiles,
    options: SessionOptions,
    order: ExecutionProvider[],
    skipped: ProviderStatus[],
    log: (line: string) => void,
    doubts: readonly ProviderStatus[] = [],
  ): Promise<
    | { session: DecoderSession; failures: ProviderStatus[] }
    | { error: ModelLoadError; patched: boolean; reason: string }
  > {
    let model: Uint8Array | string = files.onnxFile;
    let externalDataFolder: string | undefined;
    const patched = {
      logits: false,
      kv: false,
      split: false,
      grouped: false,
      q4Level: null as number | null,
      dynamicQuantization: false,
    };
    const request = {
      logitsSlice: options.sliceLogits !== false,
      kvOutputs: options.cacheOutputs !== false,
      splitAttention: options.cacheOutputs !== false && options.splitAttention !== false,
      groupQueries: options.groupQueries !== false,
      ...(options.q4AccuracyLevel !== undefined ? { q4AccuracyLevel: options.q4AccuracyLevel } : {}),
    };
    let bytes: Uint8Array | null = null;
    const read = () => {
      bytes ??= readFileSync(files.onnxFile);
      return bytes;
    };
    if (request.logitsSlice || request.kvOutputs || request.q4AccuracyLevel !== undefined) {
      const result = patchDecoderGraph(read(), request);
      if (result.bytes) {
        model = result.bytes;
        // a graph loaded from memory finds its external data files through this folder
        if (result.external) externalDataFolder = dirname(files.onnxFile);
        patched.logits = result.logitsSlice === true;
        patched.kv = result.kvOutputs === true;
        patched.split = result.splitAttention === true;
        patched.grouped = result.groupQueries === true;
      }
      // the level its MatMulNBits nodes run at (the highest, should they differ), read even when
      // nothing was patched
      patched.q4Level = result.q4Levels.length > 0 ? Math.max(...result.q4Levels) : null;
      patched.dynamicQuantization = result.dynamicQuantization > 0;
      if (patched.dynamicQuantization)
        log(
          "8-bit graph rounding activations with one scale per run (DynamicQuantizeLinear): rows batched together, and prompt chunks, move each other's logits a little; batchSize: 1 gives each prompt the answer it gets alone",
        );
      // a graph saved after this patch runs as patched (see the constructor): nothing to say
      const saved = (r: true | string) => r === 'already patched';
      if (request.logitsSlice && result.logitsSlice !== true && !saved(result.logitsSlice))
        log(`logits for every position (graph not patched: ${result.logitsSlice})`);
      if (request.kvOutputs && result.kvOutputs !== true && !saved(result.kvOutputs))
        log(`KV cache copied out of onnxruntime at every step (graph not patched: ${result.kvOutputs})`);
      else if (request.splitAttention && result.splitAttention !== true && !saved(result.kvOutputs))
        log(
          `KV cache concatenated inside onnxruntime at every step (attention not split: ${result.splitAttention})`,
        );
      if (request.q4AccuracyLevel !== undefined)
        log(
          result.q4Nodes > 0
            ? `MatMulNBits accuracy level ${request.q4AccuracyLevel} on ${result.q4Nodes} nodes`
            : `q4AccuracyLevel ${request.q4AccuracyLevel} not applied: the graph has no MatMulNBits node`,
        );
    }
    const table = positionTable(read());
    // read once: a graph left as exported goes to onnxruntime as the bytes read for its position
    // table, not as its path to read again (its external data files, if any, found beside it)
    const rewritten = typeof model !== 'string';
    if (typeof model === 'string') externalDataFolder = dirname(model);
    const graph = typeof model === 'string' ? read() : model;
    bytes = null;
    const tried: ProviderStatus[] = [];
    // before the process's first session: onnxruntime decides on its telemetry then, once
    disableOnnxTelemetry();
    for (const provider of order) {
      let session: Ort.InferenceSession;
      try {
        session = await onnxruntime().InferenceSession.create(graph, {
          executionProviders: [provider],
          graphOptimizationLevel: 'all',
          logSeverityLevel: ONNX_LOG_LEVELS.indexOf(options.onnxLogLevel ?? 'error') as 0 | 1 | 2 | 3 | 4,
          ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
          // onnxruntime's sequential execution (its default) ignores interOpNumThreads
          ...(options.interOpThreads
            ? { executionMode: 'parallel' as const, interOpNumThreads: options.interOpThreads }
            : {}),
          ...(options.profile ? { enableProfiling: true, profileFilePrefix: options.profile } : {}),
          ...(externalDataFolder
            ? { extra: { session: { model_external_initializers_file_folder_path: externalDataFolder } } }
            : {}),
        });
      } catch (cause) {
        // onnxruntime says "Failed to load shared library" and logs the why on stderr: a doubt the
        // status had beforehand (the libraries the CUDA provider loads not found) says it in the error
        const doubt = doubts.find((d) => d.name === provider);
        const reason = (cause as Error).message.split('\n')[0]!;
        tried.push({
          name: provider,
          available: false,
          reason: doubt ? `${reason} (${doubt.reason})` : reason,
        });
        continue;
      }
      try {
        const decoder = new DecoderSession(
          session,
          provider,
          files,
          patched,
          options.profile ?? null,
          table,
          options.intraOpThreads,
        );
        return { session: decoder, failures: [...skipped, ...tried] };
      } catch (error) {
        // a graph the constructor refuses (no KV cache, a fixed-length cache...): its session is freed
        await session.release();
        throw error;
      }
    }
    const error = noProviderError(files, tried, skipped);
    return { error, patched: rewritten, reason: tried[tried.length - 1]?.reason ?? '' };
  }

  /** Past tensors for the first step: zero-length, or `length` zeroed positions. */
  emptyPast(batch: number, length = 0): Tensor[] {
    const dims = [batch, this.kvHeads, length, this.headDim];
    const n = batch * this.kvHeads * length * this.headDim;
    const { Tensor } = onnxruntime();
    return this.pastNames.map(() =>
      this.kvType === 'float16'
        ? new Tensor('float16', new Uint16Array(n), dims)
        : new Tensor('float32', new Float32Array(n), dims),
    );
  }

  /** Runs one forward step. */
  async run(step: StepInputs): Promise<StepOutputs> {
    const { batch, seq } = step;
    let total = step.attentionMask.length / batch;
    let mask = step.attentionMask;
    let past = step.past;
    if (past === null && this.splitAttention) {
      // a split graph reshapes the past on shapes read from it, and Reshape reads a 0 in a shape as
      // "keep this dimension": a zero-length past breaks repeat_kv. The first step attends to one
      // zeroed slot instead, hidden by the mask (its weight is exactly 0).
      past = this.emptyPast(batch, 1);
      mask = new BigInt64Array(batch * (total + 1));
      for (let b = 0; b < batch; b++)
        mask.set(step.attentionMask.subarray(b * total, (b + 1) * total), b * (total + 1) + 1);
      total++;
    }
    past ??= this.emptyPast(batch);
    const { Tensor } = onnxruntime();
    const feeds: Record<string, Tensor> = {
      input_ids: new Tensor('int64', step.inputIds, [batch, seq]),
      attention_mask: new Tensor('int64', mask, [batch, total]),
    };
    if (this.hasPositionIds) feeds.position_ids = new Tensor('int64', step.positionIds, [batch, seq]);
    if (this.hasUseCacheBranch) feeds.use_cache_branch = new Tensor('bool', [step.past !== null], [1]);
    for (let i = 0; i < past.length; i++) feeds[this.pastNames[i]!] = past[i]!;
    const from = step.logitsFrom < 0 ? Math.max(0, seq + step.logitsFrom) : step.logitsFrom;
    if (this.logitsMode === 'patched')
      feeds[LOGITS_START_INPUT] = new Tensor('int64', BigInt64Array.of(BigInt(from)), [1]);
    if (this.logitsMode === 'num_logits_to_keep') {
      feeds.num_logits_to_keep = new Tensor(
        'int64',
        BigInt64Array.of(BigInt(from === 0 ? 0 : seq - from)),
        [],
      );
    }
    const fetch = step.fetch ?? 'present';
    if (fetch === 'new' && this.cacheMode !== 'slots')
      throw new Error('DecoderSession.run: fetch "new" needs a graph patched with new key/value outputs');
    if (fetch === 'present' && this.splitAttention)
      throw new Error(
        'DecoderSession.run: fetch "present" needs the present.* outputs, which a split-attention graph does not have (load with splitAttention: false)',
      );
    const kvNames = this.kvNames[fetch];
    const out = await this.session.run(feeds, ['logits', ...kvNames]);
    const kv = kvNames.map((n) => out[n]!);
    const logitsTensor = out.logits!;
    // no position asked for (logitsFrom = seq, e.g. a prompt chunk before the last): the graph's
    // Reshape back to [batch, 0, vocab] reads that 0 as "keep this dimension" in some exports
    if (logitsTensor.size === 0) return { logits: new Float32Array(0), kept: 0, vocab: this.vocabSize, kv };
    const [, kept, vocab] = logitsTensor.dims as number[];
    let logits: Float32Array;
    if (logitsTensor.type === 'float16') {
      const src = logitsTensor.data as Uint16Array;
      logits = halvesToFloats(src, 0, new Float32Array(src.length));
    } else logits = logitsTensor.data as Float32Array;
    // graphs that ignore the request (mode 'all') return every position: keep the asked ones
    if (kept! > seq - from && this.logitsMode === 'all') {
      const keep = seq - from;
      const trimmed = new Float32Array(batch * keep * vocab!);
      for (let b = 0; b < batch; b++) {
        trimmed.set(
          logits.subarray((b * kept! + from) * vocab!, (b * kept! + seq) * vocab!),
          b * keep * vocab!,
        );
      }
      return { logits: trimmed, kept: keep, vocab: vocab!, kv };
    }
    return { logits, kept: kept!, vocab: vocab!, kv };
  }

  /**
   * Finishes the profile that `SessionOptions.profile` started and returns the path of its file. Kernel
   * runs after this are not profiled.
   */
  endProfiling(): string {
    const prefix = this.profile;
    if (prefix === null)
      throw new GenerationError(
        'runtime.not_profiling',
        'endProfiling: this model is not being profiled (load it with the profile option, e.g. { profile: "/tmp/step" })',
        'profile',
      );
    this.profile = null;
    this.session.endProfiling();
    // onnxruntime names the file `<prefix>_<session start time>.json` and does not return the name
    const dir = dirname(resolve(prefix));
    const stem = `${basename(prefix)}_`;
    const written = readdirSync(dir)
      .filter((n) => n.startsWith(stem) && n.endsWith('.json'))
      .map((n) => join(dir, n))
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
    if (written === undefined)
      throw new GenerationError(
        'runtime.profile_missing',
        `endProfiling: onnxruntime wrote no ${stem}*.json in ${dir}`,
        'profile',
      );
    return written;
  }

  /**
   * log Σ exp over the first `ids` entries of rows `first` to `end - 1` of `logits` (`vocab` wide), in
   * float64 on the CPU: what `logSumExp` in sampling.ts computes for one row, here by onnxruntime's
   * vectorized kernels (at 49,152 ids, 0.4 ms a row on two threads, 0.75 ms on one, against 1.1 ms in
   * JS). Scoring needs one at every position, generation's log-probs one a row and step. A row with
   * NaN logits gives NaN. Each row's sum is the same, to the last bit, whichever rows come with it.
   *
   * Fewer than 16 rows (`LSE_POOLED_ROWS`) are summed on the calling thread alone: the threads of a pool
   * woken for a decoding step's few rows spin on after the sums, into the decoder's next run, and
   * contend with its threads for the cores (2 cores, batch 8, 64 tokens with log-probs: 5.2 s with the
   * sums alone, 7.1 s pooled, 4.4 s without log-probs).
   *
   * @example
   * // two rows of three logits: log(e^0 + e^1 + e^2) and log(3 e^5)
   * const sums = await model.session.logSumExp(Float32Array.of(0, 1, 2, 5, 5, 5), 3, 0, 2);
   * Math.abs(sums[1]! - (5 + Math.log(3))) < 1e-12; // true
   */
  async logSumExp(
    logits: Float32Array,
    vocab: number,
    first: number,
    end: number,
    ids = vocab,
  ): Promise<Float64Array> {
    const mode = end - first < LSE_POOLED_ROWS ? 'alone' : 'pooled';
    let opening = this.lse.get(mode);
    if (!opening) {
      const threads = mode === 'alone' ? 1 : this.intraOpThreads;
      opening = onnxruntime().InferenceSession.create(logSumExpModel(), {
        executionProviders: ['cpu'],
        ...(threads ? { intraOpNumThreads: threads } : {}),
        logSeverityLevel: 3,
      });
      this.lse.set(mode, opening);
    }
    const session = await opening;
    const { Tensor } = onnxruntime();
    const out = await session.run({
      // the rows asked for, in place (a view, no copy)
      logits: new Tensor('float32', logits.subarray(first * vocab, end * vocab), [end - first, vocab]),
      limit: new Tensor('int64', BigInt64Array.of(BigInt(Math.min(ids, vocab))), [1]),
    });
    return out.lse!.data as Float64Array;
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
    const opened = [...this.lse.values()];
    this.lse.clear();
    // one that failed to open has nothing to free
    for (const lse of opened)
      await lse.then(
        (session) => session.release(),
        () => {},
      );
  }
}

/** `DecoderSession.logSumExp` sums this many rows or more on the session's intra-op threads. */
const LSE_POOLED_ROWS = 16;

/**
 * Checks a split-attention graph against itself: the last logits of a 4-token prompt (no past, so the
 * split changes nothing) must equal those of a 3-token prompt followed by one decoding step over its
 * cache (where the split does all the work), to float rounding. Returns null when they agree, else
 * what differed. `DecoderSession.create` runs it at load and, on failure, steps back to less patching.
 *
 * With `reference` (the same graph unpatched, its cache fed back as `present.*`), the step is compared
 * with the reference's own 3 + 1 steps instead of a whole pass: what 8-bit graphs need, whose
 * per-tensor activation scales make a whole pass and a step differ by a few per cent whatever the
 * split does, while the same steps agree to float rounding.
 *
 * @example
 * const session = await DecoderSession.create(resolveModelFiles(modelDir), { splitAttention: true });
 * const problem = await checkSplitAttention(session); // null where the split agrees with the full pass
 */
export async function checkSplitAttention(
  session: Pick<DecoderSession, 'run' | 'kvType'> &
    Partial<Pick<DecoderSession, 'q4AccuracyLevel' | 'dynamicQuantization'>>,
  reference?: Pick<DecoderSession, 'run'>,
): Promise<string | null> {
  const ids = [1, 2, 3, 4];
  const step = (
    tokens: number[],
    from: number,
    past: Tensor[] | null,
    fetch: 'new' | 'present' | 'none',
    on: Pick<DecoderSession, 'run'> = session,
  ) =>
    on.run({
      batch: 1,
      seq: tokens.length,
      inputIds: BigInt64Array.from(tokens, BigInt),
      attentionMask: new BigInt64Array(from + tokens.length).fill(1n),
      positionIds: BigInt64Array.from(tokens, (_, i) => BigInt(from + i)),
      past,
      logitsFrom: -1,
      fetch,
    });
  try {
    const whole = reference
      ? await step(
          ids.slice(3),
          3,
          (await step(ids.slice(0, 3), 0, null, 'present', reference)).kv,
          'none',
          reference,
        )
      : await step(ids, 0, null, 'none');
    const head = await step(ids.slice(0, 3), 0, null, 'new');
    const next = await step(ids.slice(3), 3, head.kv, 'none');
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < whole.logits.length; i++) {
      diff = Math.max(diff, Math.abs(whole.logits[i]! - next.logits[i]!));
      scale = Math.max(scale, Math.abs(whole.logits[i]!));
    }
    // float32 rounding is ~1e-7 relative; a half-precision cache rounds keys/values to ~1e-3; 4-bit
    // layers computing in fp16, bf16 or int8 (accuracy level 2-4) round their activations, which turns
    // the split's float rounding into up to ~1 % of the logits (a smollm2-135m q4 graph at level 4:
    // 0.0141 of 2.2); 8-bit graphs round each activation with one scale for all the positions of a
    // run, so the whole pass and the step differ by about as much; a wrong split is off by the
    // logits' own size
    const lowPrecision = (session.q4AccuracyLevel ?? 0) >= 2;
    const relative =
      session.dynamicQuantization && !reference
        ? 0.15
        : lowPrecision
          ? 3e-2
          : session.kvType === 'float16'
            ? 1e-2
            : 1e-4;
    const tolerance = relative * scale + 1e-5;
    if (!(diff <= tolerance))
      return `a decoding step over the cache gave logits ${diff.toPrecision(3)} away from ${reference ? "the unpatched graph's" : 'the full pass'} (tolerance ${tolerance.toPrecision(3)})`;
    return null;
  } catch (error) {
    return `the patched graph failed to run (${(error as Error).message.split('\n')[0]})`;
  }
}

/**
 * What to do about an ONNX file onnxruntime failed to load with `message`, when the message says the
 * file cannot be parsed: it is damaged (an interrupted write or download), whatever the provider.
 *
 * @example
 * damagedGraphHint('Failed to load model because protobuf parsing failed.'); // 'the file is not a complete ONNX graph: an interrupted write or download leaves one; recreate or download it again'
 */
export function damagedGraphHint(message: string): string | undefined {
  return /Protobuf parsing failed/i.test(message)
    ? 'the file is not a complete ONNX graph: an interrupted write or download leaves one; recreate or download it again'
    : undefined;
}

/**
 * No execution provider could load the model. The providers tried come first, with how each failed:
 * that is the cause (a damaged graph fails on every provider). Those skipped (`auto` on a machine
 * without CUDA) follow only as context; when none was tried they are the cause.
 */
function noProviderError(
  files: ModelFiles,
  tried: readonly ProviderStatus[],
  skipped: readonly ProviderStatus[],
): ModelLoadError {
  const list = (statuses: readonly ProviderStatus[]) =>
    statuses.map((f) => `${f.name}: ${f.reason}`).join('; ');
  const hint = tried.map((f) => damagedGraphHint(f.reason)).find((h) => h !== undefined);
  const damaged = hint ? ` (${hint})` : '';
  const context = tried.length > 0 && skipped.length > 0 ? ` [not tried: ${list(skipped)}]` : '';
  return new ModelLoadError(
    'runtime.no_provider',
    `${files.onnxFile}: no execution provider could load the model: ${list(tried.length > 0 ? tried : skipped)}${damaged}${context}`,
    { file: files.onnxFile },
  );
}
