import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ILauncher } from '@jupyterlab/launcher';
import { IStatusBar } from '@jupyterlab/statusbar';

import { fetchSession, IVisaSession } from './api';
import { Countdown } from './clock';
import { SessionPanel } from './panel';
import { SessionStatus } from './status';
import { desktopPlugin } from './desktopPlugin';
import { sharingPlugin } from './sharingPlugin';
import { sessionIcon } from './icons';
import {
  LAUNCHER_RANK,
  requestedOpen,
  VISA_LAUNCHER_CATEGORY
} from './launcher';
import { appsPlugin } from './apps';
import { followsLifetime, startLifetime } from './lifetime';

const PLUGIN_ID = '@visa-hub/labextension:session';
const OPEN_COMMAND = 'visa-hub:open-session';
/** Redraw the countdown this often. */
const TICK_MS = 30 * 1000;
/** Ask the server again this often, so an extended lifetime shows up. */
const REFRESH_MS = 10 * 60 * 1000;

async function activate(
  app: JupyterFrontEnd,
  statusBar: IStatusBar | null,
  launcher: ILauncher | null
): Promise<void> {
  const open = requestedOpen(); // read before Lab rewrites the address
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
    label: args => (args['isLauncher'] ? 'Session' : 'VISA Session'),
    caption: 'Experiment, flavour and expiry of this instance; stop or relaunch it',
    icon: sessionIcon,
    execute: () => {
      if (!panel || panel.isDisposed) {
        panel = new SessionPanel(session, countdown);
        app.shell.add(panel, 'main');
      }
      app.shell.activateById(panel.id);
    }
  });

  launcher?.add({
    command: OPEN_COMMAND,
    category: VISA_LAUNCHER_CATEGORY,
    rank: LAUNCHER_RANK.session,
    args: { isLauncher: true }
  });
  if (open === 'session') {
    void app.restored.then(() => app.commands.execute(OPEN_COMMAND));
  }

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
  // the hub's sessions service: countdown after extensions, warnings, notifications
  startLifetime(app, countdown, status.node, lifetime => {
    session = { ...session, expires_at: lifetime.expires_at };
    status.session = session;
    if (panel && !panel.isDisposed) {
      panel.session = session;
    }
  });
  window.setInterval(async () => {
    try {
      const fresh = await fetchSession();
      if (fresh && !followsLifetime()) {
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
  optional: [IStatusBar, ILauncher],
  activate
};

export default [plugin, desktopPlugin, appsPlugin, sharingPlugin];
