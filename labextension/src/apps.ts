import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  InputDialog,
  Notification,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { LabIcon } from '@jupyterlab/ui-components';

import { LAUNCHER_RANK, VISA_LAUNCHER_CATEGORY } from './launcher';
import {
  downloadUrl,
  fetchApps,
  fetchRecords,
  IAppsListing,
  IAppVersion,
  launchApp,
  makeBundle,
  reproduce
} from './appsApi';

const PLUGIN_ID = '@visa-hub/labextension:apps';
/** Starts a desktop application on the running desktop, opening the Desktop tab (see desktopPlugin.ts). */
const DESKTOP_APP_COMMAND = 'visa-hub:open-desktop-application';
/** App cards come after the Desktop, the Session and the desktop's own applications. */
const APPS_RANK = LAUNCHER_RANK.applications + 50;
const COMMANDS = {
  launch: 'visa-hub:apps-launch',
  bundle: 'visa-hub:apps-bundle',
  reproduce: 'visa-hub:apps-reproduce'
};
/** How often the catalog is asked for changes: a published version shows up within this (plus a request). */
const POLL_MS = 2000;

const appIcon = new LabIcon({
  name: 'visa-hub:app',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">' +
    '<rect x="4" y="12" width="56" height="40" rx="6" fill="#1b6aa5"/>' +
    '<rect x="12" y="20" width="40" height="8" rx="2" fill="#fff"/>' +
    '<rect x="12" y="34" width="26" height="8" rx="2" fill="#9fd3ff"/></svg>'
});

/** Start a command-line app in a terminal (where its output stays readable). */
async function runInTerminal(app: JupyterFrontEnd, version: IAppVersion): Promise<void> {
  const session = await app.serviceManager.terminals.startNew();
  await app.commands.execute('terminal:open', { name: session.name });
  session.send({ type: 'stdin', content: [`${version.command_line}\r`] });
}

async function launch(app: JupyterFrontEnd, version: IAppVersion): Promise<void> {
  if (version.kind === 'command') {
    await runInTerminal(app, version);
    return;
  }
  if (version.kind === 'desktop' && app.commands.hasCommand(DESKTOP_APP_COMMAND)) {
    // its desktop entry (written by the server) starts it on the desktop, whose tab opens
    await app.commands.execute(DESKTOP_APP_COMMAND, { id: version.desktop_entry, name: version.label });
    return;
  }
  const started = await launchApp(version.ref);
  Notification.success(`${started?.label ?? version.label} is starting.`, { autoClose: 4000 });
}

async function downloadBundle(listing: IAppsListing | null): Promise<void> {
  if (!listing || listing.cycles.length === 0) {
    await showErrorMessage('No bundle', 'The app catalog defines no proposal cycles.');
    return;
  }
  let cycle = listing.cycle;
  if (!cycle || listing.cycles.length > 1) {
    const choice = await InputDialog.getItem({
      title: 'Download the apps of a proposal cycle',
      items: listing.cycles,
      current: cycle ? listing.cycles.indexOf(cycle) : 0
    });
    if (!choice.button.accept || !choice.value) {
      return;
    }
    cycle = choice.value;
  }
  const id = Notification.emit(`Preparing the apps of cycle ${cycle}…`, 'in-progress', {
    autoClose: false
  });
  try {
    const bundle = await makeBundle(cycle);
    if (!bundle) {
      return;
    }
    const versions = bundle.manifest.apps.map(a => `${a.app} ${a.version}`).join(', ');
    Notification.update({
      id,
      message: `Bundle of cycle ${cycle} (${versions}) saved as ${bundle.path}`,
      type: 'success',
      autoClose: 8000
    });
    const link = document.createElement('a');
    link.href = downloadUrl(bundle.path);
    link.download = bundle.path.split('/').pop() ?? 'bundle.tar';
    document.body.appendChild(link);
    link.click();
    link.remove();
  } catch (reason) {
    Notification.update({ id, message: String((reason as Error).message), type: 'error', autoClose: false });
  }
}

async function reproduceRecord(app: JupyterFrontEnd): Promise<void> {
  const records = await fetchRecords();
  if (!records || records.records.length === 0) {
    await showErrorMessage('Nothing to reproduce', 'You have no provenance records yet.');
    return;
  }
  const items = records.records.map(r => `${r.id} — ${r.apps.join(', ') || 'no apps'}`);
  const choice = await InputDialog.getItem({
    title: 'Reproduce a session: start the same app versions',
    items,
    current: 0
  });
  if (!choice.button.accept || !choice.value) {
    return;
  }
  const record = records.records[items.indexOf(choice.value)];
  try {
    const answer = await reproduce(record.id);
    for (const kernel of answer?.kernels ?? []) {
      await app.commands.execute('console:create', {
        kernelPreference: { id: kernel.id },
        name: `${kernel.ref} (reproduced)`
      });
    }
    const started = answer?.started ?? [];
    await showDialog({
      title: `Reproducing ${record.id}`,
      body:
        `Kernels: ${(answer?.kernels ?? []).map(k => k.ref).join(', ') || 'none'}. ` +
        `Other apps started: ${started.join(', ') || 'none'}.`,
      buttons: [Dialog.okButton()]
    });
  } catch (reason) {
    await showErrorMessage('Cannot reproduce this session', reason as Error);
  }
}

async function activate(
  app: JupyterFrontEnd,
  launcher: ILauncher | null,
  palette: ICommandPalette | null
): Promise<void> {
  let listing: IAppsListing | null;
  try {
    listing = await fetchApps();
  } catch (reason) {
    console.error('visa-hub: the app catalog cannot be read', reason);
    listing = null;
  }
  if (listing === null) {
    return;
  }
  let versions = new Map<string, IAppVersion>();
  let cards: { dispose(): void }[] = [];

  app.commands.addCommand(COMMANDS.launch, {
    icon: appIcon,
    label: args => versions.get(args.ref as string)?.label ?? `App ${args.ref}`,
    caption: args => {
      const version = versions.get(args.ref as string);
      return version
        ? `${version.ref} (${version.kind}${version.user_provided ? ', your image' : ''})`
        : '';
    },
    execute: async args => {
      const version = versions.get(args.ref as string);
      if (!version) {
        return;
      }
      try {
        await launch(app, version);
      } catch (reason) {
        await showErrorMessage(`Cannot start ${version.label}`, reason as Error);
      }
    }
  });
  app.commands.addCommand(COMMANDS.bundle, {
    label: 'Download the Apps of My Proposal Cycle',
    execute: () => downloadBundle(listing)
  });
  app.commands.addCommand(COMMANDS.reproduce, {
    label: 'Reproduce a Session from Its Provenance Record…',
    execute: () => reproduceRecord(app)
  });
  palette?.addItem({ command: COMMANDS.bundle, category: 'VISA Apps' });
  palette?.addItem({ command: COMMANDS.reproduce, category: 'VISA Apps' });

  const apply = (fresh: IAppsListing) => {
    listing = fresh;
    versions = new Map(fresh.apps.map(v => [v.ref, v]));
    cards.forEach(card => card.dispose());
    cards = [];
    if (launcher) {
      // kernels get their cards from their kernel specs (Notebook and Console sections)
      fresh.apps
        .filter(v => v.kind !== 'kernel')
        .forEach((version, rank) => {
          cards.push(
            launcher.add({
              command: COMMANDS.launch,
              args: { ref: version.ref },
              category: VISA_LAUNCHER_CATEGORY,
              rank: APPS_RANK + rank
            })
          );
        });
    }
  };
  apply(listing);

  let busy = false;
  window.setInterval(async () => {
    if (busy) {
      return;
    }
    busy = true;
    try {
      const fresh = await fetchApps();
      if (fresh && fresh.revision !== listing?.revision) {
        await app.serviceManager.kernelspecs.refreshSpecs(); // the launcher's kernel cards follow
        apply(fresh);
      }
    } catch (reason) {
      console.warn('visa-hub: app catalog refresh failed', reason);
    } finally {
      busy = false;
    }
  }, POLL_MS);
}

/** Apps: launcher cards, live kernel specs, bundles and reproduce for visa-hub instances. */
export const appsPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Scientific apps as versioned containers: launcher, live catalog, bundles, reproduce.',
  autoStart: true,
  optional: [ILauncher, ICommandPalette],
  activate
};
