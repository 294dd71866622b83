import { Widget } from '@lumino/widgets';

import { IVisaSession } from './api';
import { Countdown } from './clock';
import { statusText, urgency } from './format';

/** The status bar item: `LOKI-2026-042 · LoKI · 11h 59m left`; click to open the session panel. */
export class SessionStatus extends Widget {
  constructor(
    private _session: IVisaSession,
    private _countdown: Countdown,
    onClick: () => void
  ) {
    super();
    this.addClass('visa-hub-status');
    this.node.title = 'VISA session: click for details';
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this.node.addEventListener('click', onClick);
    this.node.addEventListener('keydown', (event: KeyboardEvent) => {
      if (event.key === 'Enter' || event.key === ' ') {
        onClick();
      }
    });
    this.refresh();
  }

  /** Show a fresher session (e.g. after the lifetime was extended). */
  set session(session: IVisaSession) {
    this._session = session;
    this.refresh();
  }

  /** Redraw the text and the warning style from the countdown. */
  refresh(): void {
    const seconds = this._countdown.secondsLeft;
    const { code } = this._session.experiment;
    this.node.textContent = statusText(code, this._session.instrument, seconds);
    const level = urgency(seconds);
    this.toggleClass('visa-hub-status-warning', level === 'warning');
    this.toggleClass('visa-hub-status-expired', level === 'expired');
  }
}
