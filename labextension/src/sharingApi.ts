import { ServerConnection } from '@jupyterlab/services';

/** `GET visa/api/sharing/me`: my role on this instance and what I may do now. */
export interface ISharingMe {
  user: string;
  role: 'owner' | 'collaborator' | 'support' | 'guest' | null;
  role_title: string;
  owner: string;
  server_name: string;
  experiment: { code: string; title: string };
  access: { lab: boolean; lab_write: boolean; desktop: 'control' | 'view' | null };
  /** Why I may do less than my role gives (owner away, ...); empty when nothing is held back. */
  reason: string;
  owner_away: 'lock' | 'disconnect' | 'open';
  unrestricted: boolean;
  owner_present: boolean;
}

/** One person connected now (`GET visa/api/sharing/presence`). */
export interface IConnected {
  name: string;
  role: string | null;
  role_title: string;
  since: string | null;
  connections: string[];
  desktop: 'control' | 'view' | null;
  lab_write: boolean;
  restricted: string;
}

export interface IPresence {
  owner: string;
  connected: IConnected[];
  owner_away: 'lock' | 'disconnect' | 'open';
  unrestricted: boolean;
  owner_present: boolean;
}

/** A member of the instance (the sessions service's view of its shares). */
export interface IMember {
  user: string;
  name: string;
  role: string;
  granted_by: string;
  granted_at: string;
  expires_at: string | null;
}

export interface IMembers {
  members: IMember[];
  experiment: string;
  share_codes: boolean;
}

export interface ICandidate {
  username: string;
  name: string;
  member: boolean;
}

export interface ISupportRequest {
  id: number;
  requester: string;
  requester_name: string;
  comment: string;
  status: string;
  created_at: string;
}

/** A failed call: the server's message for people. */
export class SharingError extends Error {}

async function call<T>(
  path: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T | null> {
  const response = await ServerConnection.makeRequest(
    settings.baseUrl + 'visa/api/sharing/' + path,
    init,
    settings
  );
  if (response.status === 404 && path === 'me') {
    return null; // not a visa-hub instance under JupyterHub
  }
  let body: any = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  if (!response.ok) {
    throw new SharingError(body.message || `${response.status} ${response.statusText}`);
  }
  return body as T;
}

export const fetchMe = () => call<ISharingMe>('me');
export const fetchPresence = () => call<IPresence>('presence');
export const fetchMembers = () => call<IMembers>('members');
export const fetchRequests = () =>
  call<{ requests: ISupportRequest[] }>('requests');

export function fetchCandidates(query: string) {
  return call<{ candidates: ICandidate[] }>(
    'candidates?q=' + encodeURIComponent(query)
  );
}

export function share(user: string, role: string) {
  return call<IMember>('members', {
    method: 'POST',
    body: JSON.stringify({ user, role })
  });
}

export function revoke(user: string) {
  return call<unknown>('members/' + encodeURIComponent(user), {
    method: 'DELETE'
  });
}

export function answerRequest(id: number, decision: 'support' | 'guest' | 'refuse') {
  return call<unknown>('requests/' + id, {
    method: 'POST',
    body: JSON.stringify({ decision })
  });
}

export function saveSettings(settings: {
  owner_away?: string;
  unrestricted?: boolean;
}) {
  return call<IPresence>('settings', {
    method: 'PUT',
    body: JSON.stringify(settings)
  });
}
