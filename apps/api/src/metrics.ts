type Labels = Record<string, string>;

const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

const key = (labels: Labels) =>
  Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');

interface Histogram {
  buckets: number[];
  sum: number;
  count: number;
}

/** A series read when scraped, with labels (a served model's figures). */
export interface Sample {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  labels: Labels;
  value: number;
}

/** Counters that never carry labels, exposed at 0 before their first event. */
const UNLABELLED_COUNTERS = ['implicit_it_client_aborts_total', 'implicit_it_stream_stalls_total'] as const;

/** Counters labelled by model, exposed at 0 for each served model before their first event. */
const MODEL_COUNTERS = [
  'implicit_it_prompt_tokens_total',
  'implicit_it_completion_tokens_total',
  'implicit_it_rejected_total',
] as const;

/**
 * The server's counters in the Prometheus text format (version 0.0.4): requests by route and
 * status, prompt and completion tokens by model, request latency by route and time to first token
 * by model, queue depth,
 * running generations, client disconnects, process memory, event-loop delay, and what `samples`
 * reads at each scrape (each model's prefix cache). No dependency: a few maps.
 *
 * @example
 * const metrics: Metrics = app.state.metrics;
 * await app.request('/health');
 * metrics.value('implicit_it_requests_total', { route: '/health', status: '200' }); // 1
 */
export class Metrics {
  private readonly counters = new Map<string, Map<string, number>>();
  private readonly histograms = new Map<string, Map<string, Histogram>>();

  /**
   * @param gauges read at each scrape
   * @param samples labelled series read at each scrape (each model's queue and prefix cache)
   * @param models the served models' ids: their token and 429 counters start at 0
   */
  constructor(
    private readonly gauges: () => Record<string, number>,
    private readonly samples: () => readonly Sample[] = () => [],
    models: readonly string[] = [],
  ) {
    // the event counters are there at 0 from the start: rate() and absent() alerts on them work
    // before the first event (Prometheus sees a series appear only when it is exposed)
    for (const name of UNLABELLED_COUNTERS) this.inc(name, {}, 0);
    for (const model of models) for (const name of MODEL_COUNTERS) this.inc(name, { model }, 0);
  }

  /** Adds `by` to a counter. */
  inc(name: string, labels: Labels = {}, by = 1): void {
    let series = this.counters.get(name);
    if (!series) {
      series = new Map();
      this.counters.set(name, series);
    }
    const k = key(labels);
    series.set(k, (series.get(k) ?? 0) + by);
  }

  /** Records one observation (seconds) in a histogram. */
  observe(name: string, labels: Labels, value: number): void {
    let series = this.histograms.get(name);
    if (!series) {
      series = new Map();
      this.histograms.set(name, series);
    }
    const k = key(labels);
    let h = series.get(k);
    if (!h) {
      h = { buckets: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
      series.set(k, h);
    }
    const hist = h;
    LATENCY_BUCKETS.forEach((le, i) => {
      if (value <= le) hist.buckets[i]!++;
    });
    hist.sum += value;
    hist.count++;
  }

  /**
   * A counter's value (for tests and the playground): that of the series with exactly `labels`, or
   * without them, the sum of all its series (`implicit_it_completion_tokens_total` of all models).
   */
  value(name: string, labels?: Labels): number {
    const series = this.counters.get(name);
    if (!series) return 0;
    if (labels) return series.get(key(labels)) ?? 0;
    let total = 0;
    for (const value of series.values()) total += value;
    return total;
  }

  /** The exposition text. */
  render(): string {
    const lines: string[] = [];
    const HELP: Record<string, [string, string]> = {
      implicit_it_requests_total: [
        'counter',
        'HTTP requests by route and the status code sent (a stream the client left after its 200 header counts as 200; implicit_it_client_aborts_total counts it too).',
      ],
      implicit_it_prompt_tokens_total: [
        'counter',
        'Prompt tokens of started requests, by model (each prompt once, however many choices it has).',
      ],
      implicit_it_completion_tokens_total: [
        'counter',
        'Generated tokens, by model (those of aborted generations included).',
      ],
      implicit_it_rejected_total: [
        'counter',
        "Requests refused with 429 because their model's queue was full, by model.",
      ],
      implicit_it_client_aborts_total: [
        'counter',
        'Requests whose client disconnected before the reply was complete (their generations are stopped).',
      ],
      implicit_it_stream_stalls_total: [
        'counter',
        'Streams stopped because their client accepted no data for the stall timeout (their generations are stopped and their slots freed).',
      ],
      implicit_it_request_duration_seconds: ['histogram', 'Time from request to last byte, by route.'],
      implicit_it_time_to_first_token_seconds: [
        'histogram',
        'Time from request to the first generated token, by model.',
      ],
    };
    const series = (name: string, labels: string, value: number) =>
      lines.push(`${name}${labels ? `{${labels}}` : ''} ${Number.isFinite(value) ? value : 0}`);
    for (const [name, map] of this.counters) {
      const [type, help] = HELP[name] ?? ['counter', name];
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of map) series(name, labels, value);
    }
    for (const [name, map] of this.histograms) {
      const [, help] = HELP[name] ?? ['histogram', name];
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
      for (const [labels, h] of map) {
        const sep = labels ? `${labels},` : '';
        LATENCY_BUCKETS.forEach((le, i) => {
          series(`${name}_bucket`, `${sep}le="${le}"`, h.buckets[i]!);
        });
        series(`${name}_bucket`, `${sep}le="+Inf"`, h.count);
        series(`${name}_sum`, labels, h.sum);
        series(`${name}_count`, labels, h.count);
      }
    }
    const gaugeHelp: Record<string, string> = {
      implicit_it_queue_depth: 'Requests waiting for a generation slot.',
      implicit_it_active_generations: 'Generations running now.',
      implicit_it_concurrency_limit: 'Generations (choices) allowed to run at once.',
      implicit_it_queue_limit: 'Requests allowed to wait; more get 429.',
      process_resident_memory_bytes: 'Resident memory of the server process.',
      nodejs_heap_used_bytes: 'V8 heap in use.',
      nodejs_eventloop_lag_max_seconds:
        "Longest event-loop delay since the last scrape (onnxruntime steps run on this thread). As prom-client's, read by monitorEventLoopDelay at a 10 ms resolution, which it includes: an idle server reads about 0.01.",
      nodejs_eventloop_lag_p99_seconds:
        '99th percentile of event-loop delay since the last scrape (10 ms resolution included).',
      nodejs_eventloop_lag_mean_seconds:
        'Mean event-loop delay since the last scrape (10 ms resolution included).',
    };
    for (const [name, value] of Object.entries(this.gauges())) {
      lines.push(`# HELP ${name} ${gaugeHelp[name] ?? name}`, `# TYPE ${name} gauge`);
      series(name, '', value);
    }
    // one HELP and TYPE per name, however many label sets follow
    const named = new Map<string, Sample[]>();
    for (const sample of this.samples()) {
      const list = named.get(sample.name);
      if (list) list.push(sample);
      else named.set(sample.name, [sample]);
    }
    for (const [name, list] of named) {
      lines.push(`# HELP ${name} ${list[0]!.help}`, `# TYPE ${name} ${list[0]!.type}`);
      for (const sample of list) series(name, key(sample.labels), sample.value);
    }
    return `${lines.join('\n')}\n`;
  }
}
