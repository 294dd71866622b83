import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { IStatusBar } from '@jupyterlab/statusbar';

import { fetchSession, IVisaSession } from './api';
import { Countdown } from './clock';
import { SessionPanel } from './panel';
import { SessionStatus } from './status';
import { desktopPlugin } from './desktopPlugin';

const PLUGIN_ID = '@visa-hub/labextension:session';
const OPEN_COMMAND = 'visa-hub:open-session';
/** Redraw the countdown this often. */
const TICK_MS = 30 * 1000;
/** Ask the server again this often, so an extended lifetime shows up. */
const REFRESH_MS = 10 * 60 * 1000;

async function activate(
  app: JupyterFrontEnd,
  statusBar: IStatusBar | null
): Promise<void> {
  let first: IVisaSession | null;
  try {
    first = await fetchSession();
  } catch (reason) {
    console.error('visa-hub: could not read the session', reason);
    return;
  }
  if (first === null) {
    return; // not a visa-hub instance: show nothing
  }
  let session = first;

  const countdown = new Countdown(session.seconds_left);
  let panel: SessionPanel | null = null;

  app.commands.addCommand(OPEN_COMMAND, {
    label: 'VISA Session',
    caption: 'Experiment, flavour and expiry of this instance',
    execute: () => {
      if (!panel || panel.isDisposed) {
        panel = new SessionPanel(session, countdown);
        app.shell.add(panel, 'main');
      }
      app.shell.activateById(panel.id);
    }
  });

  const status = new SessionStatus(session, countdown, () => {
    void app.commands.execute(OPEN_COMMAND);
  });
  statusBar?.registerStatusItem(PLUGIN_ID, {
    item: status,
    align: 'left',
    rank: 1000
  });

  const redraw = () => {
    status.refresh();
    panel?.refresh();
  };
  window.setInterval(redraw, TICK_MS);
  window.setInterval(async () => {
    try {
      const fresh = await fetchSession();
      if (fresh) {
        session = fresh;
        countdown.reset(fresh.seconds_left);
        status.session = fresh;
        if (panel && !panel.isDisposed) {
          panel.session = fresh;
        }
      }
    } catch (reason) {
      console.warn('visa-hub: session refresh failed', reason);
    }
  }, REFRESH_MS);
}

/** Status bar countdown and Session panel for visa-hub instances. */
const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Shows the VISA session (experiment, instrument, time left).',
  autoStart: true,
  optional: [IStatusBar],
  activate
};

export default [plugin, desktopPlugin];
