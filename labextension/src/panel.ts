import { Widget } from '@lumino/widgets';

import { IVisaSession } from './api';
import { Countdown } from './clock';
import { describeFlavour, formatTimeLeft } from './format';

/** The Session panel: what this instance runs for, when it ends, and how to start it again. */
export class SessionPanel extends Widget {
  constructor(
    private _session: IVisaSession,
    private _countdown: Countdown
  ) {
    super();
    this.id = 'visa-hub-session';
    this.title.label = 'Session';
    this.title.caption = 'VISA session';
    this.title.closable = true;
    this.addClass('visa-hub-panel');
    this.refresh();
  }

  set session(session: IVisaSession) {
    this._session = session;
    this.refresh();
  }

  /** Rebuild the panel's content from the session and the countdown. */
  refresh(): void {
    const s = this._session;
    const expires = new Date(s.expires_at);
    const rows: [string, string][] = [
      ['Experiment', `${s.experiment.code}: ${s.experiment.title}`],
      ['Instrument', s.instrument],
      ['Flavour', describeFlavour(s.flavour)],
      ['Image', s.image],
      [
        'Expires',
        `${expires.toLocaleString()} (${formatTimeLeft(this._countdown.secondsLeft)})`
      ]
    ];

    const heading = document.createElement('h2');
    heading.textContent = s.experiment.title || s.experiment.code;

    const table = document.createElement('dl');
    for (const [label, value] of rows) {
      const dt = document.createElement('dt');
      dt.textContent = label;
      const dd = document.createElement('dd');
      dd.textContent = value;
      table.append(dt, dd);
    }

    const relaunch = document.createElement('a');
    relaunch.className = 'visa-hub-relaunch';
    relaunch.href = s.spawn_url;
    relaunch.target = '_blank';
    relaunch.rel = 'noopener';
    relaunch.textContent = 'Relaunch with the same settings';

    this.node.replaceChildren(heading, table, relaunch);
  }
}
