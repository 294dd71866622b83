import { ServerConnection } from '@jupyterlab/services';

/** One app version, as `GET visa/api/apps` lists it. */
export interface IAppVersion {
  app: string;
  version: string;
  ref: string;
  title: string;
  label: string;
  kind: 'kernel' | 'desktop' | 'command';
  status: 'current' | 'supported' | 'deprecated';
  digest: string | null;
  user_provided: boolean;
  default: boolean;
  kernel_name: string | null;
  desktop_entry: string;
  /** What a terminal runs to start it (an absolute command: login shells reset PATH). */
  command_line: string;
}

export interface IAppsListing {
  cycle: string | null;
  cycles: string[];
  experiment: string | null;
  apps: IAppVersion[];
  problems: string[];
  /** Changes whenever anything listed changes (a version published, an image registered). */
  revision: string;
}

export interface IRecordSummary {
  id: string;
  experiment: string | null;
  updated_at: string | null;
  apps: string[];
}

const BASE = 'visa/api/apps';

async function request<T>(path: string, init: RequestInit = {}): Promise<T | null> {
  const settings = ServerConnection.makeSettings();
  const response = await ServerConnection.makeRequest(settings.baseUrl + path, init, settings);
  if (response.status === 404 && path === BASE) {
    return null; // not a visa-hub instance
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.message || `${response.status} ${response.statusText}`);
  }
  return body as T;
}

function post<T>(path: string, body: unknown): Promise<T | null> {
  return request<T>(path, { method: 'POST', body: JSON.stringify(body) });
}

export const fetchApps = (): Promise<IAppsListing | null> => request<IAppsListing>(BASE);

export const launchApp = (ref: string, args: string[] = []) =>
  post<{ ref: string; label: string; pid: number }>(`${BASE}/launch`, { ref, args });

export const makeBundle = (cycle: string | null) =>
  post<{ path: string; manifest: { apps: { app: string; version: string; digest: string }[] } }>(
    `${BASE}/bundle`,
    { cycle }
  );

export const fetchRecords = () =>
  request<{ current: string; records: IRecordSummary[] }>(`${BASE}/records`);

export const reproduce = (record: string) =>
  post<{ record: string; kernels: { id: string; name: string; ref: string }[]; started: string[] }>(
    `${BASE}/reproduce`,
    { record }
  );

/** Where Jupyter serves a file of the server's root for download. */
export function downloadUrl(path: string): string {
  const settings = ServerConnection.makeSettings();
  const encoded = path.split('/').map(encodeURIComponent).join('/');
  return `${settings.baseUrl}files/${encoded}?download=1`;
}
