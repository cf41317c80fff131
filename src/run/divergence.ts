// A training loss that turns NaN or infinite, or explodes far above where it started, ends the
// run at once, saying where: everything after it (curves, accuracies, observations) would be
// computed from a net that no longer learns. (With batch norm a diverged net can come back to
// a finite loss: a CIFAR net at lr 1e6 reaches losses near 1e10 and then settles at ln 10, at
// chance, so NaN alone is not the test.)
import { RunError } from '../errors.js';

/** A loss this many times the first one is divergence: honest training never climbs 1000-fold. */
export const EXPLODED_FACTOR = 1000;

export class LossWatch {
  private first: number | undefined;
  private lastFinite: { loss: number; epoch: number; step: number } | undefined;

  /**
   * `label` names the training in the message; `lr` is the learning rate in use and `lrFromFlag`
   * whether the user set it with --lr (then the hint names the flag).
   */
  constructor(
    private readonly label: string,
    private readonly lr: number,
    private readonly lrFromFlag: boolean,
  ) {}

  /** Records a sound loss; throws a RunError naming epoch, step and the last finite loss otherwise. */
  check(loss: number, epoch: number, step: number): void {
    const exploded = this.first !== undefined && this.first > 0 && loss > EXPLODED_FACTOR * this.first;
    if (Number.isFinite(loss) && !exploded) {
      this.first ??= loss;
      this.lastFinite = { loss, epoch, step };
      return;
    }
    const what = exploded ? `${loss.toPrecision(3)}, over ${EXPLODED_FACTOR}× its first value ${this.first!.toPrecision(5)},` : loss;
    const last = this.lastFinite
      ? `last sound loss ${this.lastFinite.loss.toPrecision(5)} at epoch ${this.lastFinite.epoch}, step ${this.lastFinite.step}`
      : 'no finite loss before it';
    const hint = this.lrFromFlag ? `lower --lr (given ${this.lr})` : `the learning rate ${this.lr} is too high for this setting`;
    throw new RunError(`${this.label} diverged: the training loss is ${what} at epoch ${epoch}, step ${step} (${last}); ${hint}`);
  }
}
