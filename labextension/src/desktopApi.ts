import { ServerConnection } from '@jupyterlab/services';

/** What `GET visa/api/desktop` answers. */
export interface IDesktopStatus {
  /** Can the desktop be used now (Xvnc installed, desktop enabled, not crashed)? */
  available: boolean;
  /** Why not, for people; `null` when available. */
  message: string | null;
  /** Does Xvnc run already? (The first connection starts it.) */
  running: boolean;
  /** The current user may only watch (a guest of a shared session). */
  view_only: boolean;
  /** The websocket this user should open, relative to the server's base URL. */
  websocket_path: string;
  view_only_websocket_path: string;
}

export const DESKTOP_STATUS_PATH = 'visa/api/desktop';

/**
 * Ask the visa-hub server extension about the desktop.
 *
 * Resolves to `null` when the server has no visa-hub desktop (the API answers 404).
 */
export async function fetchDesktopStatus(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IDesktopStatus | null> {
  const url = settings.baseUrl + DESKTOP_STATUS_PATH;
  const response = await ServerConnection.makeRequest(url, {}, settings);
  if (response.status === 404) {
    return null;
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response);
  }
  return (await response.json()) as IDesktopStatus;
}

/** The websocket URL of `path` (relative to the server), with the token when the server uses one. */
export function desktopWebsocketUrl(
  path: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  const url = new URL(path, settings.wsUrl);
  if (settings.token) {
    url.searchParams.set('token', settings.token);
  }
  return url.toString();
}
