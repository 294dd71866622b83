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
import { Contents } from '@jupyterlab/services';
import { ILauncher } from '@jupyterlab/launcher';
import { IMainMenu } from '@jupyterlab/mainmenu';
import {
  copyIcon,
  downloadIcon,
  fileUploadIcon,
  keyboardIcon,
  refreshIcon
} from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { DesktopView } from './desktop';
import { fetchDesktopStatus } from './desktopApi';
import { fetchApplications, IDesktopApplication } from './desktopTools';
import {
  chooseDownload,
  KeyboardLayoutPicker,
  startOnDesktop,
  uploadToDesktop
} from './desktopToolbar';
import { desktopIcon, fullscreenIcon } from './icons';
import {
  LAUNCHER_RANK,
  requestedOpen,
  VISA_LAUNCHER_CATEGORY
} from './launcher';

export { desktopIcon };

const PLUGIN_ID = '@visa-hub/labextension:desktop';
export const OPEN_DESKTOP_COMMAND = 'visa-hub:open-desktop';

export const OPEN_DESKTOP_APP_COMMAND = 'visa-hub:open-desktop-application';

/**
 * A Desktop tab: the desktop view with its toolbar (full screen, Ctrl+Alt+Del, clipboard, upload, download,
 * keyboard layout, reconnect).
 */
function createDesktopTab(contents: Contents.IManager): MainAreaWidget<DesktopView> {
  const view = new DesktopView();
  const tab = new MainAreaWidget({ content: view });
  tab.id = `${view.id}-tab`;
  tab.title.label = 'Desktop';
  tab.title.icon = desktopIcon;
  tab.title.closable = true;
  tab.addClass('visa-desktop-tab');
  const buttons: [string, Widget][] = [
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
      'upload',
      new ToolbarButton({
        icon: fileUploadIcon,
        label: 'Upload',
        tooltip: 'Upload files from this computer to the desktop (your ~/Desktop folder)',
        className: 'visa-desktop-upload',
        onClick: () => void uploadToDesktop(contents)
      })
    ],
    [
      'download',
      new ToolbarButton({
        icon: downloadIcon,
        label: 'Download',
        tooltip: 'Download a file from the desktop (your ~/Desktop folder) to this computer',
        className: 'visa-desktop-download',
        onClick: () => void chooseDownload(contents)
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
    ],
    ['keyboard', new KeyboardLayoutPicker()]
  ];
  for (const [name, button] of buttons) {
    tab.toolbar.addItem(name, button);
  }
  view.title.changed.connect(() => {
    tab.title.label = view.title.label;
    tab.title.caption = view.title.caption;
    // a guest only watches: no upload, download or keyboard layout for her
    tab.toggleClass('visa-desktop-tab-view-only', view.viewOnly);
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
  const open = requestedOpen(); // read before Lab rewrites the address
  const contents = app.serviceManager.contents;
  const tracker = new WidgetTracker<MainAreaWidget<DesktopView>>({
    namespace: 'visa-desktop'
  });

  app.commands.addCommand(OPEN_DESKTOP_COMMAND, {
    label: args => (args['isLauncher'] ? 'Desktop' : 'Open Desktop'),
    caption: 'The instance’s remote desktop, in a tab beside your notebooks',
    icon: desktopIcon,
    execute: () => {
      const tab = createDesktopTab(contents);
      void tracker.add(tab);
      app.shell.add(tab, 'main');
      app.shell.activateById(tab.id);
      return tab;
    }
  });

  /** The Desktop tab to use: the current one, else the first, else a new one. */
  const desktopTab = (): MainAreaWidget<DesktopView> => {
    const tab = tracker.currentWidget ?? tracker.find(() => true);
    if (tab) {
      app.shell.activateById(tab.id);
      return tab;
    }
    return app.commands.execute(OPEN_DESKTOP_COMMAND) as unknown as MainAreaWidget<DesktopView>;
  };

  app.commands.addCommand(OPEN_DESKTOP_APP_COMMAND, {
    label: args => String(args['name'] ?? 'Desktop application'),
    caption: args =>
      String(args['comment'] || `Start ${args['name']} on the desktop`),
    icon: desktopIcon,
    execute: async args => {
      const tab = await Promise.resolve(desktopTab());
      await startOnDesktop(tab.content, String(args['id']));
    }
  });

  launcher?.add({
    command: OPEN_DESKTOP_COMMAND,
    category: VISA_LAUNCHER_CATEGORY,
    rank: LAUNCHER_RANK.desktop,
    args: { isLauncher: true }
  });
  void addApplications(launcher);
  if (open === 'desktop') {
    void app.restored.then(() => desktopTab());
  }
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

/** Desktop applications marked for Lab (`X-VisaHub-Lab=true`) as cards in the launcher's VISA section. */
async function addApplications(launcher: ILauncher | null): Promise<void> {
  if (!launcher) {
    return;
  }
  let apps: IDesktopApplication[];
  try {
    apps = await fetchApplications();
  } catch (reason) {
    console.warn('visa-hub: could not list the desktop applications', reason);
    return;
  }
  apps
    .filter(app => app.lab)
    .forEach((app, index) =>
      launcher.add({
        command: OPEN_DESKTOP_APP_COMMAND,
        category: VISA_LAUNCHER_CATEGORY,
        rank: LAUNCHER_RANK.applications + index,
        args: { id: app.id, name: app.name, comment: app.comment }
      })
    );
}

/** The Desktop: the instance's remote desktop as a JupyterLab tab (noVNC over the visa-hub websocket). */
export const desktopPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Opens the instance’s remote desktop in a JupyterLab tab.',
  autoStart: true,
  optional: [ILauncher, ICommandPalette, IMainMenu, ILayoutRestorer],
  activate
};
