import { JupyterFrontEnd } from '@jupyterlab/application';
import { InputDialog, Notification } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';

import { Countdown } from './clock';

/** What `GET visa/api/lifetime` answers (from the hub's sessions service). */
export interface ILifetime {
  expires_at: string;
  seconds_left: number;
  /** How many end-of-life warning thresholds are crossed (0: none), out of `levels`. */
  level: number;
  levels: number;
  warnings: {
    key: string;
    kind: 'expiry' | 'inactivity' | 'membership';
    level: number;
    deadline: string;
    seconds_left: number;
    message: string;
  }[];
  extension: {
    step_hours: number;
    auto: boolean;
    auto_up_to_hours: number;
    max_hours: number;
    lifetime_hours: number;
    pending: { id: number; requested_expires_at: string; comment: string } | null;
  };
  answers: {
    id: number;
    status: 'accepted' | 'refused';
    answer: string;
    requested_expires_at: string;
  }[];
  relaunch_url: string;
}

export const LIFETIME_PATH = 'visa/api/lifetime';
export const EXTEND_COMMAND = 'visa-hub:extend';
/** Ask the service this often (warnings at a threshold show up within this time). */
const POLL_MS = 10 * 1000;

let current: ILifetime | null = null;

/** Whether the sessions service answers for this instance (then its expiry is the one that counts). */
export function followsLifetime(): boolean {
  return current !== null;
}

async function call(
  path: string,
  init: RequestInit = {}
): Promise<{ ok: boolean; status: number; data: any }> {
  const settings = ServerConnection.makeSettings();
  const response = await ServerConnection.makeRequest(
    settings.baseUrl + path,
    init,
    settings
  );
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

/** The lifetime now, or `null` without a sessions service. */
export async function fetchLifetime(): Promise<ILifetime | null> {
  const { ok, status, data } = await call(LIFETIME_PATH);
  if (status === 404 || !ok) {
    return null;
  }
  return data as ILifetime;
}

function shownKey(): string {
  return `visa-hub:lifetime-shown:${document.location.pathname.split('/lab')[0]}`;
}

function shown(): Set<string> {
  try {
    return new Set(JSON.parse(localStorage.getItem(shownKey()) || '[]'));
  } catch {
    return new Set();
  }
}

function remember(key: string): void {
  const keys = shown();
  keys.add(key);
  localStorage.setItem(shownKey(), JSON.stringify([...keys].slice(-200)));
}

/** Extend by one step; beyond the automatic limit ask for a comment and send a request. */
export async function extend(onDone: () => void): Promise<void> {
  const hours = current?.extension.step_hours ?? 24;
  let result = await call(`${LIFETIME_PATH}/extend`, {
    method: 'POST',
    body: JSON.stringify({ hours })
  });
  if (!result.ok && result.status === 400 && /approval/.test(result.data.message || '')) {
    const comment = await InputDialog.getText({
      title: 'Request a longer lifetime',
      label: `${result.data.message} An administrator decides; you will be told here and by e-mail.`,
      placeholder: 'Why you need the instance longer'
    });
    if (!comment.button.accept || !comment.value) {
      return;
    }
    result = await call(`${LIFETIME_PATH}/extend`, {
      method: 'POST',
      body: JSON.stringify({ hours, comment: comment.value })
    });
  }
  if (!result.ok) {
    Notification.error(result.data.message || 'The extension failed.', {
      autoClose: false
    });
  } else if (result.data.status === 'extended') {
    Notification.success(
      `Extended: the instance now ends ${new Date(result.data.expires_at).toLocaleString()}.`,
      { autoClose: 8000 }
    );
  } else {
    Notification.info(
      'Your extension request was sent to the administrators. You will be told their answer.',
      { autoClose: 8000 }
    );
  }
  onDone();
}

function notify(message: string, relaunchUrl: string, run: () => void): void {
  Notification.warning(message, {
    autoClose: false,
    actions: [
      { label: 'Extend', callback: run, displayType: 'accent' },
      {
        label: 'Relaunch later',
        callback: () =>
          Notification.info(
            'Your files, settings and open tabs are kept. After the instance stops, relaunch it with the same settings from the hub or the link in your e-mail.',
            {
              autoClose: 10000,
              actions: [
                {
                  label: 'Copy relaunch link',
                  callback: () =>
                    void navigator.clipboard?.writeText(relaunchUrl)
                }
              ]
            }
          )
      }
    ]
  });
}

/** Elements the Session panel shows under the session (extension state and button). */
export function panelExtras(): HTMLElement[] {
  if (!current) {
    return [];
  }
  const box = document.createElement('div');
  box.className = 'visa-hub-lifetime';
  for (const warning of current.warnings) {
    const p = document.createElement('p');
    p.className = 'visa-hub-lifetime-warning';
    p.textContent = warning.message;
    box.append(p);
  }
  const pending = current.extension.pending;
  if (pending) {
    const p = document.createElement('p');
    p.className = 'visa-hub-lifetime-pending';
    p.textContent = `Extension requested until ${new Date(pending.requested_expires_at).toLocaleString()}: waiting for an administrator.`;
    box.append(p);
  }
  const button = document.createElement('button');
  button.className = 'jp-Button jp-mod-styled jp-mod-accept visa-hub-extend';
  button.textContent = `Extend by ${current.extension.step_hours} h`;
  button.addEventListener('click', () => void extendHook());
  box.append(button);
  return [box];
}

let extendHook: () => Promise<void> = async () => undefined;

/**
 * Follow the instance's lifetime: keep the countdown right after extensions, colour the status bar item at each
 * warning threshold, and show each warning and each answer to a request once as a JupyterLab notification.
 */
export function startLifetime(
  app: JupyterFrontEnd,
  countdown: Countdown,
  statusNode: HTMLElement,
  onChange: (lifetime: ILifetime) => void
): void {
  const refresh = async (): Promise<void> => {
    let lifetime: ILifetime | null;
    try {
      lifetime = await fetchLifetime();
    } catch (reason) {
      console.warn('visa-hub: lifetime refresh failed', reason);
      return;
    }
    if (!lifetime) {
      return;
    }
    current = lifetime;
    countdown.reset(lifetime.seconds_left);
    statusNode.dataset.lifetimeLevel = String(lifetime.level);
    for (let i = 1; i <= Math.max(lifetime.levels, 3); i++) {
      statusNode.classList.toggle(
        `visa-hub-lifetime-level-${i}`,
        lifetime.level === i
      );
    }
    statusNode.classList.toggle(
      'visa-hub-lifetime-warning',
      lifetime.level > 0 || lifetime.warnings.length > 0
    );
    statusNode.classList.toggle(
      'visa-hub-lifetime-critical',
      lifetime.level > 0 && lifetime.level >= lifetime.levels
    );
    const seen = shown();
    for (const warning of lifetime.warnings) {
      if (!seen.has(warning.key)) {
        remember(warning.key);
        notify(warning.message, lifetime.relaunch_url, () => void extendHook());
      }
    }
    for (const answer of lifetime.answers) {
      const key = `answer:${answer.id}`;
      if (!seen.has(key)) {
        remember(key);
        const text =
          answer.status === 'accepted'
            ? `Your extension request was accepted: the instance now ends ${new Date(lifetime.expires_at).toLocaleString()}.`
            : 'Your extension request was refused.';
        const extra = answer.answer ? ` ${answer.answer}` : '';
        (answer.status === 'accepted' ? Notification.success : Notification.error)(
          text + extra,
          { autoClose: false }
        );
      }
    }
    onChange(lifetime);
  };
  extendHook = () => extend(() => void refresh());
  app.commands.addCommand(EXTEND_COMMAND, {
    label: 'Extend this instance',
    caption: 'Extend the lifetime of this VISA instance',
    execute: () => extendHook()
  });
  void refresh();
  window.setInterval(() => void refresh(), POLL_MS);
}
