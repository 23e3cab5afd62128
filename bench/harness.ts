// The measuring part of `npm run bench`: closed-loop workers, alternating A/B rounds, latency
// percentiles. A is the library's path, B the bare SQL doing the same writes through the same
// driver and pool; alternating short rounds cancels machine drift between the two.
import { performance } from 'node:perf_hooks';

export type Op = (worker: number, i: number) => Promise<unknown>;

export interface Sample {
  ops: number;
  seconds: number;
  latenciesMs: number[];
}

export interface Line {
  name: string;
  opsPerSec: number;
  baselineOpsPerSec: number | null;
  ratio: number | null;
  p50Ms: number;
  p99Ms: number;
  /** Each round's library ops/s over the baseline's in the same round (compare's lines): the spread behind `ratio`. */
  roundRatios?: number[];
}

/** Runs `op` on `concurrency` workers for `seconds`; each worker awaits its previous call. */
export async function measure(op: Op, concurrency: number, seconds: number, counter: { i: number }): Promise<Sample> {
  const latenciesMs: number[] = [];
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let ops = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        await op(worker, counter.i++);
        latenciesMs.push(performance.now() - t0);
        ops++;
      }
    }),
  );
  return { ops, seconds: (performance.now() - start) / 1000, latenciesMs };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const merge = (samples: Sample[]): Sample => ({
  ops: samples.reduce((a, s) => a + s.ops, 0),
  seconds: samples.reduce((a, s) => a + s.seconds, 0),
  latenciesMs: samples.flatMap((s) => s.latenciesMs),
});

export interface Comparison {
  name: string;
  library: Op;
  baseline?: Op;
  concurrency: number;
  rounds: number;
  secondsPerRound: number;
  /**
   * Seconds of each side run as in a round before measuring, unmeasured (default 1.5): its
   * `concurrency` workers open every connection the rounds use and prepare the statements on it.
   */
  warmupSeconds?: number;
}

/** A/B/A/B… rounds (B first on odd rounds, so neither side always runs on a warmer machine). */
export async function compare(c: Comparison): Promise<Line> {
  const counterA = { i: 0 };
  const counterB = { i: 0 };
  // Each side runs as in a round, unmeasured, before round 1. With 50 calls on one connection
  // instead, the library's side reached its steady speed only during round 1, where it runs first:
  // round 1's ratio of the single-source line on PostgreSQL was 0.63-0.76 in five runs, the other
  // rounds' 0.83-1.12 (BENCHMARKS.md, Method); calls 8 at a time alone did not change that.
  const warmSeconds = c.warmupSeconds ?? 1.5;
  await measure(c.library, c.concurrency, warmSeconds, counterA);
  if (c.baseline) await measure(c.baseline, c.concurrency, warmSeconds, counterB);
  const a: Sample[] = [];
  const b: Sample[] = [];
  for (let round = 0; round < c.rounds; round++) {
    const runA = async () => a.push(await measure(c.library, c.concurrency, c.secondsPerRound, counterA));
    const runB = async () => {
      if (c.baseline) b.push(await measure(c.baseline, c.concurrency, c.secondsPerRound, counterB));
    };
    if (round % 2 === 0) {
      await runA();
      await runB();
    } else {
      await runB();
      await runA();
    }
  }
  const lib = merge(a);
  const sorted = [...lib.latenciesMs].sort((x, y) => x - y);
  const rate = (x: Sample) => x.ops / x.seconds;
  const opsPerSec = rate(lib);
  const base = c.baseline ? merge(b) : undefined;
  const baselineOpsPerSec = base ? rate(base) : null;
  return {
    name: c.name,
    opsPerSec,
    baselineOpsPerSec,
    ratio: baselineOpsPerSec ? opsPerSec / baselineOpsPerSec : null,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    ...(base ? { roundRatios: a.map((x, i) => rate(x) / rate(b[i]!)) } : {}),
  };
}

/** Times a one-shot operation `runs` times (setup), reporting runs/s and latencies. */
export async function timeRuns(name: string, runs: number, op: (i: number) => Promise<unknown>): Promise<Line> {
  const latencies: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await op(i);
    latencies.push(performance.now() - t0);
  }
  const sorted = [...latencies].sort((x, y) => x - y);
  const total = latencies.reduce((x, y) => x + y, 0) / 1000;
  return {
    name,
    opsPerSec: runs / total,
    baselineOpsPerSec: null,
    ratio: null,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
  };
}

export function formatLine(line: Line): string {
  const f = (n: number, d = 0) => n.toFixed(d).padStart(9);
  return `${line.name.padEnd(46)} ${f(line.opsPerSec)} ops/s  p50 ${f(line.p50Ms, 2)} ms  p99 ${f(line.p99Ms, 2)} ms  ${
    line.ratio === null ? '' : `baseline ${f(line.baselineOpsPerSec!)} ops/s  ratio ${line.ratio.toFixed(2)}`
  }${line.roundRatios ? ` (rounds ${line.roundRatios.map((r) => r.toFixed(2)).join(' ')})` : ''}`;
}
