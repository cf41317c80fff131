// Progress for long loops: a live bar on a terminal, one line per epoch elsewhere (CI logs).
import cliProgress from 'cli-progress';

export interface EpochProgress {
  /** Advance by `images`, with the current loss (or other headline value). */
  tick(images: number, loss: number): void;
  /** Ends the bar; logs the summary line when one is given. */
  stop(summary?: string): void;
}

// Bars still drawing: a loop that throws mid-epoch (Ctrl-C, divergence, a kernel error) never
// reaches its stop(), and a live bar's timer would keep the process running with the cursor hidden.
const live = new Set<cliProgress.SingleBar>();

/** Stops every bar still drawing (the run's error path calls it). */
export function stopLiveProgress(): void {
  for (const bar of live) bar.stop();
  live.clear();
}

export function epochProgress(label: string, totalImages: number, log: (line: string) => void): EpochProgress {
  const started = performance.now();
  let done = 0;
  const interactive = process.stderr.isTTY === true && process.env.CI === undefined;
  const bar = interactive
    ? new cliProgress.SingleBar(
        {
          format: `${label} {bar} {percentage}% | loss {loss} | {rate} img/s | ETA {eta_formatted}`,
          hideCursor: true,
          clearOnComplete: true,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(totalImages, 0, { loss: '-', rate: '-' });
  if (bar) live.add(bar);
  return {
    tick(images, loss) {
      done += images;
      const rate = done / ((performance.now() - started) / 1000);
      bar?.update(done, { loss: loss.toFixed(4), rate: rate.toFixed(0) });
    },
    stop(summary) {
      if (bar) {
        bar.stop();
        live.delete(bar);
      }
      if (summary === undefined) return;
      const seconds = (performance.now() - started) / 1000;
      log(`${label} ${summary} | ${(done / seconds).toFixed(0)} img/s | ${seconds.toFixed(1)} s`);
    },
  };
}
