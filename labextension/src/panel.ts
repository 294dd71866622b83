import { Widget } from '@lumino/widgets';

import { IVisaSession } from './api';
import { Countdown } from './clock';
import { describeFlavour, formatDateTime, formatTimeLeft } from './format';
import { sessionIcon } from './icons';
import { panelExtras } from './lifetime';

/** Leave Lab for a hub page (the hub asks for confirmation before it stops anything). */
function goTo(url: string): void {
  window.location.assign(url);
}

/** The Session panel: what this instance runs for, until when, and how to stop or relaunch it. */
export class SessionPanel extends Widget {
  /** Other plugins add sections below (e.g. sharing): each factory returns the same node every time. */
  static addSection(factory: () => HTMLElement): void {
    SessionPanel._sections.push(factory);
  }
  private static _sections: (() => HTMLElement)[] = [];

  constructor(
    private _session: IVisaSession,
    private _countdown: Countdown
  ) {
    super();
    this.id = 'visa-hub-session';
    this.title.label = 'Session';
    this.title.caption = 'VISA session: experiment, flavour, expiry';
    this.title.icon = sessionIcon;
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
    const rows: [string, string, string][] = [
      ['experiment', 'Experiment', `${s.experiment.code}: ${s.experiment.title}`],
      ['instrument', 'Instrument', s.instrument],
      ['flavour', 'Flavour', describeFlavour(s.flavour)],
      ['image', 'Image', s.image_title || s.image],
      ['started', 'Started', formatDateTime(s.starts_at)],
      [
        'expires',
        'Expires',
        `${formatDateTime(s.expires_at)} (${formatTimeLeft(this._countdown.secondsLeft)})`
      ]
    ];

    const heading = document.createElement('h2');
    heading.textContent = s.experiment.title || s.experiment.code;

    const table = document.createElement('dl');
    for (const [key, label, value] of rows) {
      const dt = document.createElement('dt');
      dt.textContent = label;
      const dd = document.createElement('dd');
      dd.textContent = value;
      dd.dataset.field = key;
      table.append(dt, dd);
    }

    const actions = document.createElement('div');
    actions.className = 'visa-hub-actions';
    if (s.relaunch_url) {
      actions.append(
        this._button(
          'Relaunch with the same settings',
          'jp-mod-accept visa-hub-relaunch',
          'Stop this instance and start it again with the same experiment, flavour and image (the hub asks first)',
          s.relaunch_url
        )
      );
    }
    if (s.stop_url) {
      actions.append(
        this._button(
          'Stop instance',
          'jp-mod-warn visa-hub-stop',
          'Stop this instance (the hub asks first); your files stay in your home',
          s.stop_url
        )
      );
    }
    const note = document.createElement('p');
    note.className = 'visa-hub-note';
    note.textContent =
      'Both ask for confirmation on the hub first. Your files stay in your home; save open notebooks before.';

    this.node.replaceChildren(
      heading,
      table,
      actions,
      note,
      ...panelExtras(),
      ...SessionPanel._sections.map(section => section())
    );
  }

  private _button(
    label: string,
    classes: string,
    tooltip: string,
    url: string
  ): HTMLButtonElement {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = `jp-mod-styled ${classes}`;
    button.textContent = label;
    button.title = tooltip;
    button.dataset.href = url;
    button.addEventListener('click', () => goTo(url));
    return button;
  }
}
