/**
 * Seconds left, counted down locally from the server's answer.
 *
 * Uses the browser's monotonic clock, so a wrong wall clock on the user's machine does not matter.
 */
export class Countdown {
  constructor(secondsLeft: number) {
    this.reset(secondsLeft);
  }

  /** Start again from a fresh server answer. */
  reset(secondsLeft: number): void {
    this._secondsLeft = secondsLeft;
    this._since = performance.now();
  }

  /** Seconds left now (never negative). */
  get secondsLeft(): number {
    const elapsed = (performance.now() - this._since) / 1000;
    return Math.max(0, Math.round(this._secondsLeft - elapsed));
  }

  private _secondsLeft = 0;
  private _since = 0;
}
