import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

import { SessionPanel } from './panel';
import { SharingBanner, SharingSection, watchersText } from './sharing';
import { fetchMe, fetchPresence, ISharingMe } from './sharingApi';

const PLUGIN_ID = '@visa-hub/labextension:sharing';
/** How often a visitor's banner asks again (the owner may leave, the share may change). */
const BANNER_REFRESH_MS = 5000;
/** How often an open Desktop tab shows again who else is on the desktop. */
const WATCHERS_REFRESH_MS = 4000;

/** Each Desktop tab says who else is on the desktop (with control or watching). */
function showDesktopWatchers(me: ISharingMe): void {
  window.setInterval(async () => {
    const tabs = document.querySelectorAll<HTMLElement>('.visa-desktop-tab');
    if (tabs.length === 0 || !me.access.lab) {
      return;
    }
    let text: string;
    try {
      const presence = await fetchPresence();
      text = presence ? watchersText(presence.connected, me.user) : '';
    } catch {
      return;
    }
    tabs.forEach(tab => {
      let badge = tab.querySelector<HTMLElement>('.visa-desktop-watchers');
      if (!badge) {
        badge = document.createElement('div');
        badge.className = 'visa-desktop-watchers';
        badge.setAttribute('role', 'status');
        tab.append(badge);
      }
      badge.textContent = text;
      badge.hidden = text === '';
    });
  }, WATCHERS_REFRESH_MS);
}

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
  showDesktopWatchers(me);
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
