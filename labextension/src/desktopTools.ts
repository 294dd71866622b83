import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { Contents, ServerConnection } from '@jupyterlab/services';

/** `GET visa/api/desktop/keyboard`. */
export interface IKeyboard {
  layout: string | null;
  running: boolean;
  layouts: { name: string; description: string }[];
}

/** One entry of `GET visa/api/desktop/applications`. */
export interface IDesktopApplication {
  id: string;
  name: string;
  comment: string;
  section: string;
  panel: boolean;
  lab: boolean;
  has_icon_file: boolean;
}

const API = 'visa/api/desktop/';

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const response = await ServerConnection.makeRequest(
    settings.baseUrl + API + path,
    init,
    settings
  );
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).message || message;
    } catch {
      // not JSON: keep the status line
    }
    throw new Error(message);
  }
  return (await response.json()) as T;
}

export function fetchKeyboard(): Promise<IKeyboard> {
  return request<IKeyboard>('keyboard');
}

/** Switch the desktop's keyboard layout (and remember it for her next desktop). */
export function setKeyboardLayout(
  layout: string
): Promise<{ layout: string; applied: boolean }> {
  return request('keyboard', {
    method: 'PUT',
    body: JSON.stringify({ layout })
  });
}

export async function fetchApplications(): Promise<IDesktopApplication[]> {
  return (
    await request<{ applications: IDesktopApplication[] }>('applications')
  ).applications;
}

/** Start a desktop application on the running desktop. */
export function startApplication(id: string): Promise<unknown> {
  return request(`applications/${encodeURIComponent(id)}`, { method: 'POST' });
}

/** The contents-API path of `~/Desktop`; an error says why there is none. */
export async function desktopFolder(): Promise<string> {
  const folder = await request<{ path: string | null; message: string | null }>(
    'folder'
  );
  if (folder.path === null) {
    throw new Error(folder.message ?? 'There is no desktop folder.');
  }
  return folder.path;
}

/** Upload chunks of this size (Jupyter Server joins numbered chunks; -1 marks the last). */
const CHUNK = 1024 * 1024;

function base64(bytes: ArrayBuffer): string {
  let binary = '';
  const view = new Uint8Array(bytes);
  for (let i = 0; i < view.length; i += 0x8000) {
    binary += String.fromCharCode(...view.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Put `file` into `folder` with Jupyter's contents API (in chunks, as Lab's own uploader does). */
export async function uploadFile(
  contents: Contents.IManager,
  folder: string,
  file: File
): Promise<string> {
  const path = folder ? `${folder}/${file.name}` : file.name;
  if (file.size <= CHUNK) {
    await contents.save(path, {
      type: 'file',
      format: 'base64',
      content: base64(await file.arrayBuffer())
    });
    return path;
  }
  for (let start = 0, chunk = 1; start < file.size; start += CHUNK, chunk++) {
    const last = start + CHUNK >= file.size;
    await contents.save(path, {
      type: 'file',
      format: 'base64',
      chunk: last ? -1 : chunk,
      content: base64(await file.slice(start, start + CHUNK).arrayBuffer())
    });
  }
  return path;
}

/** Make sure `folder` exists (the desktop creates it when it starts; an upload may come first). */
export async function ensureFolder(
  contents: Contents.IManager,
  folder: string
): Promise<void> {
  try {
    await contents.get(folder, { content: false });
  } catch {
    await contents.save(folder, { type: 'directory' });
  }
}

/** The URL that downloads `path` (Jupyter's files handler with `?download=1`). */
export function downloadUrl(path: string): string {
  return (
    URLExt.join(PageConfig.getBaseUrl(), 'files', URLExt.encodeParts(path)) +
    '?download=1'
  );
}
