import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

import { SessionPanel } from './panel';
import { SharingBanner, SharingSection } from './sharing';
import { fetchMe, ISharingMe } from './sharingApi';

const PLUGIN_ID = '@visa-hub/labextension:sharing';
/** How often a visitor's banner asks again (the owner may leave, the share may change). */
const BANNER_REFRESH_MS = 5000;

async function activate(app: JupyterFrontEnd): Promise<void> {
  let me: ISharingMe | null;
  try {
    me = await fetchMe();
  } catch (reason) {
    console.warn('visa-hub: sharing unavailable', reason);
    return;
  }
  if (me === null) {
    return; // not shared-capable here (no JupyterHub, or sharing switched off)
  }
  let section: SharingSection | null = null;
  SessionPanel.addSection(() => {
    section = section ?? new SharingSection(me as ISharingMe);
    return section.node;
  });
  if (me.role === 'owner') {
    return;
  }
  const banner = new SharingBanner(me);
  app.shell.add(banner, 'top', { rank: 1000 });
  window.setInterval(async () => {
    try {
      const fresh = await fetchMe();
      if (fresh) {
        banner.display(fresh);
      }
    } catch {
      // keep the last banner: the next call may work
    }
  }, BANNER_REFRESH_MS);
}

/** Sharing in Lab: the Session panel's sharing section, and a banner for visitors saying whose session it is. */
export const sharingPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Who is connected, sharing with experiment members, support requests (visa-hub).',
  autoStart: true,
  activate
};
