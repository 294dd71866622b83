import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  ToolbarButton,
  WidgetTracker
} from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { IMainMenu } from '@jupyterlab/mainmenu';
import {
  copyIcon,
  keyboardIcon,
  LabIcon,
  refreshIcon
} from '@jupyterlab/ui-components';

import { DesktopView } from './desktop';
import { fetchDesktopStatus } from './desktopApi';

const PLUGIN_ID = '@visa-hub/labextension:desktop';
export const OPEN_DESKTOP_COMMAND = 'visa-hub:open-desktop';

const desktopSvg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 4h18a1 1 0 0 1 1 1v11a1 1 0 0 1-1 1h-7v2h3v2H7v-2h3v-2H3a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1zm1 2v9h16V6H4z"/>
    <path d="M5 13h14v2H5z"/>
  </g>
</svg>`;
export const desktopIcon = new LabIcon({
  name: 'visa-hub:desktop',
  svgstr: desktopSvg
});

const fullscreenSvg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M4 4h6v2H6v4H4V4zm10 0h6v6h-2V6h-4V4zM4 14h2v4h4v2H4v-6zm14 0h2v6h-6v-2h4v-4z"/>
</svg>`;
const fullscreenIcon = new LabIcon({
  name: 'visa-hub:fullscreen',
  svgstr: fullscreenSvg
});

/** A Desktop tab: the desktop view with its toolbar (full screen, Ctrl+Alt+Del, clipboard, reconnect). */
function createDesktopTab(): MainAreaWidget<DesktopView> {
  const view = new DesktopView();
  const tab = new MainAreaWidget({ content: view });
  tab.id = `${view.id}-tab`;
  tab.title.label = 'Desktop';
  tab.title.icon = desktopIcon;
  tab.title.closable = true;
  tab.addClass('visa-desktop-tab');
  const buttons: [string, ToolbarButton][] = [
    [
      'fullscreen',
      new ToolbarButton({
        icon: fullscreenIcon,
        tooltip: 'Full screen (Esc to leave)',
        className: 'visa-desktop-fullscreen',
        onClick: () => void view.toggleFullscreen()
      })
    ],
    [
      'ctrl-alt-del',
      new ToolbarButton({
        icon: keyboardIcon,
        label: 'Ctrl+Alt+Del',
        tooltip: 'Send Ctrl+Alt+Del to the desktop',
        className: 'visa-desktop-ctrl-alt-del',
        onClick: () => view.sendCtrlAltDel()
      })
    ],
    [
      'clipboard',
      new ToolbarButton({
        icon: copyIcon,
        label: 'Clipboard',
        tooltip: 'Exchange clipboard text between the desktop and the browser',
        className: 'visa-desktop-clipboard-toggle',
        onClick: () => view.toggleClipboard()
      })
    ],
    [
      'reconnect',
      new ToolbarButton({
        icon: refreshIcon,
        label: 'Reconnect',
        tooltip: 'Connect to the desktop again',
        className: 'visa-desktop-reconnect',
        onClick: () => void view.connect()
      })
    ]
  ];
  for (const [name, button] of buttons) {
    tab.toolbar.addItem(name, button);
  }
  view.title.changed.connect(() => {
    tab.title.label = view.title.label;
    tab.title.caption = view.title.caption;
  });
  void view.connect();
  return tab;
}

async function activate(
  app: JupyterFrontEnd,
  launcher: ILauncher | null,
  palette: ICommandPalette | null,
  mainMenu: IMainMenu | null,
  restorer: ILayoutRestorer | null
): Promise<void> {
  try {
    if ((await fetchDesktopStatus()) === null) {
      return; // not a visa-hub server: no Desktop
    }
  } catch (reason) {
    console.error('visa-hub: could not ask about the desktop', reason);
    return;
  }
  const tracker = new WidgetTracker<MainAreaWidget<DesktopView>>({
    namespace: 'visa-desktop'
  });

  app.commands.addCommand(OPEN_DESKTOP_COMMAND, {
    label: args => (args['isLauncher'] ? 'Desktop' : 'Open Desktop'),
    caption: 'The instance’s remote desktop, in a tab beside your notebooks',
    icon: desktopIcon,
    execute: () => {
      const tab = createDesktopTab();
      void tracker.add(tab);
      app.shell.add(tab, 'main');
      app.shell.activateById(tab.id);
      return tab;
    }
  });

  launcher?.add({
    command: OPEN_DESKTOP_COMMAND,
    category: 'Other',
    rank: 0,
    args: { isLauncher: true }
  });
  palette?.addItem({ command: OPEN_DESKTOP_COMMAND, category: 'VISA' });
  mainMenu?.fileMenu.newMenu.addGroup([{ command: OPEN_DESKTOP_COMMAND }], 40);
  mainMenu?.viewMenu.addGroup([{ command: OPEN_DESKTOP_COMMAND }], 40);
  if (restorer) {
    void restorer.restore(tracker, {
      command: OPEN_DESKTOP_COMMAND,
      name: tab => tab.id
    });
  }
}

/** The Desktop: the instance's remote desktop as a JupyterLab tab (noVNC over the visa-hub websocket). */
export const desktopPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Opens the instance’s remote desktop in a JupyterLab tab.',
  autoStart: true,
  optional: [ILauncher, ICommandPalette, IMainMenu, ILayoutRestorer],
  activate
};
