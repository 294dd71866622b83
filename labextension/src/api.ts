import { ServerConnection } from '@jupyterlab/services';

/** The session an instance runs for, as `GET visa/api/session` returns it. */
export interface IVisaSession {
  username: string;
  experiment: {
    code: string;
    title: string;
    instrument: string;
    starts_at?: string;
    ends_at?: string;
    proposal_pk?: number;
    local_contact?: string;
    role?: string;
  };
  instrument: string;
  flavour: { name: string; cpus: number; memory_gb: number; gpus: number };
  image: string;
  /** The image's title from the site catalog (instances started before it was recorded have none). */
  image_title?: string;
  lifetime_hours: number;
  starts_at: string;
  expires_at: string;
  /** Seconds until expiry when the server answered (never negative). */
  seconds_left: number;
  hub_url: string;
  hub_prefix: string;
  /** The hub's spawn page for this server: the form opens with the last choices. */
  spawn_url: string;
  /** The hub's page that stops this instance and starts it again with the same settings, after a confirmation. */
  relaunch_url?: string;
  /** The hub's page that stops this instance, after a confirmation. */
  stop_url?: string;
}

/** The API path, relative to the server's base URL. */
export const SESSION_PATH = 'visa/api/session';

/**
 * Fetch the session from the visa-hub server extension.
 *
 * Resolves to `null` when the server runs outside visa-hub (the API answers 404).
 */
export async function fetchSession(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IVisaSession | null> {
  const url = settings.baseUrl + SESSION_PATH;
  const response = await ServerConnection.makeRequest(url, {}, settings);
  if (response.status === 404) {
    return null;
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response);
  }
  return (await response.json()) as IVisaSession;
}
