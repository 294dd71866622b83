import { Dialog, Notification, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Contents } from '@jupyterlab/services';
import { keyboardIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { DesktopView } from './desktop';
import {
  desktopFolder,
  downloadUrl,
  ensureFolder,
  fetchKeyboard,
  setKeyboardLayout,
  startApplication,
  uploadFile
} from './desktopTools';

function message(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}

/** Toolbar "Upload": pick files in the browser, put them into `~/Desktop` (they show up as desktop icons). */
export async function uploadToDesktop(contents: Contents.IManager): Promise<void> {
  const input = document.createElement('input');
  input.type = 'file';
  input.multiple = true;
  input.className = 'visa-desktop-upload-input';
  input.hidden = true;
  document.body.append(input);
  const files = await new Promise<File[]>(resolve => {
    input.addEventListener('change', () => resolve(Array.from(input.files ?? [])), {
      once: true
    });
    input.addEventListener('cancel', () => resolve([]), { once: true });
    input.click();
  });
  input.remove();
  if (!files.length) {
    return;
  }
  try {
    const folder = await desktopFolder();
    await ensureFolder(contents, folder);
    for (const file of files) {
      await uploadFile(contents, folder, file);
    }
    const names = files.map(file => file.name).join(', ');
    Notification.success(`Uploaded to your desktop (~/Desktop): ${names}`, {
      autoClose: 5000
    });
  } catch (reason) {
    await showErrorMessage('Upload to the desktop failed', message(reason));
  }
}

/** Toolbar "Download": the files in `~/Desktop`, newest first; a click downloads one. */
export async function chooseDownload(contents: Contents.IManager): Promise<void> {
  let folder: string;
  let files: Contents.IModel[];
  try {
    folder = await desktopFolder();
    await ensureFolder(contents, folder);
    const listing = await contents.get(folder, { content: true });
    files = (listing.content as Contents.IModel[])
      .filter(item => item.type !== 'directory')
      .sort((a, b) => (b.last_modified ?? '').localeCompare(a.last_modified ?? ''));
  } catch (reason) {
    await showErrorMessage('Cannot list the desktop folder', message(reason));
    return;
  }
  const body = document.createElement('div');
  body.className = 'visa-desktop-download-list';
  if (!files.length) {
    const empty = document.createElement('p');
    empty.textContent =
      'Your desktop folder (~/Desktop) is empty. Save a file there on the desktop, then download it here.';
    body.append(empty);
  } else {
    const list = document.createElement('ul');
    for (const file of files) {
      const item = document.createElement('li');
      const link = document.createElement('a');
      link.href = downloadUrl(file.path);
      link.download = file.name;
      link.textContent = file.name;
      link.className = 'visa-desktop-download-link';
      item.append(link);
      list.append(item);
    }
    body.append(list);
  }
  const hint = document.createElement('p');
  hint.className = 'visa-desktop-download-hint';
  hint.textContent =
    'Files elsewhere in your home: right-click them in the file browser and choose Download.';
  body.append(hint);
  await showDialog({
    title: 'Download from the desktop',
    body: new Widget({ node: body }),
    buttons: [Dialog.cancelButton({ label: 'Close' })]
  });
}

/** Wait until the Desktop tab is connected, then start application `id` there. */
export async function startOnDesktop(view: DesktopView, id: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (view.state !== 'connected' && Date.now() < deadline && !view.isDisposed) {
    await new Promise(resolve => setTimeout(resolve, 250));
  }
  try {
    await startApplication(id);
  } catch (reason) {
    await showErrorMessage('The application did not start', message(reason));
  }
}

/** Toolbar "Keyboard": the desktop's keyboard layout, to match the keyboard in front of her. */
export class KeyboardLayoutPicker extends Widget {
  constructor() {
    super({ node: document.createElement('label') });
    this.addClass('visa-desktop-keyboard');
    this.node.title =
      'Keyboard layout of the desktop: choose the one of your keyboard (remembered for your next desktop)';
    const text = document.createElement('span');
    text.className = 'visa-desktop-keyboard-label';
    text.setAttribute('aria-hidden', 'true');
    this._select = document.createElement('select');
    this._select.className = 'visa-desktop-keyboard-select';
    this._select.setAttribute('aria-label', 'Keyboard layout of the desktop');
    this._select.addEventListener('change', () => void this._change());
    text.append(keyboardIcon.element({ tag: 'span' }));
    this.node.append(text, this._select);
    void this.refresh();
  }

  /** The layout the select shows (tests and people read it). */
  get value(): string {
    return this._select.value;
  }

  /** Ask the server for the choices and the layout in use. */
  async refresh(): Promise<void> {
    try {
      const keyboard = await fetchKeyboard();
      const current = keyboard.layout ?? 'us';
      this._select.replaceChildren(
        ...keyboard.layouts.map(layout => {
          const option = document.createElement('option');
          option.value = layout.name;
          option.textContent = layout.description;
          option.title = layout.name;
          option.selected = layout.name === current;
          return option;
        })
      );
      this._current = current;
    } catch (reason) {
      console.warn('visa-hub: keyboard layouts unavailable', reason);
      this.hide();
    }
  }

  private async _change(): Promise<void> {
    const wanted = this._select.value;
    try {
      const result = await setKeyboardLayout(wanted);
      this._current = result.layout;
      this.node.dataset.layout = result.layout;
    } catch (reason) {
      this._select.value = this._current;
      await showErrorMessage('Keyboard layout not changed', message(reason));
    }
  }

  private _select: HTMLSelectElement;
  private _current = '';
}
