import { Widget } from '@lumino/widgets';

import { formatDateTime } from './format';
import {
  answerRequest,
  fetchCandidates,
  fetchMembers,
  fetchPresence,
  fetchRequests,
  IConnected,
  IMembers,
  IPresence,
  ISharingMe,
  ISupportRequest,
  revoke,
  saveSettings,
  share,
  SharingError
} from './sharingApi';

/** How often the section asks again who is here, while it is shown. */
const REFRESH_MS = 3000;

const AWAY_CHOICES: [string, string][] = [
  ['lock', 'Lock: the others only watch until I am back'],
  ['disconnect', 'Disconnect: nobody else may stay while I am away'],
  ['open', 'Open: nothing changes while I am away']
];

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

function connectionText(person: IConnected): string {
  const what = person.connections.map(kind =>
    kind === 'desktop'
      ? 'desktop'
      : kind === 'desktop-view'
        ? 'watching the desktop'
        : 'Lab'
  );
  return what.join(', ');
}

/** `Also on the desktop: bob (control), gus (watching)`; empty when nobody else is there. */
export function watchersText(people: IConnected[], me: string): string {
  const others = people
    .filter(person => person.name !== me)
    .filter(person =>
      person.connections.some(kind => kind === 'desktop' || kind === 'desktop-view')
    )
    .map(
      person =>
        `${person.name} (${person.connections.includes('desktop') ? 'control' : 'watching'})`
    );
  return others.length ? `Also on the desktop: ${others.join(', ')}` : '';
}

/**
 * The sharing part of the Session panel: who is connected now (name, role, since when), and for the owner
 * "Share with…" (experiment members offered as she types), members with Revoke, support requests with
 * Accept as support / Accept as guest / Refuse, and what happens while she is away.
 */
export class SharingSection {
  readonly node: HTMLElement;

  constructor(private _me: ISharingMe) {
    this.node = el('section', 'visa-sharing');
    this.node.dataset.role = _me.role ?? '';
    this._connected = el('ul', 'visa-sharing-connected');
    this._members = el('ul', 'visa-sharing-members');
    this._requests = el('ul', 'visa-sharing-requests');
    this._message = el('p', 'visa-sharing-message');
    this._message.setAttribute('role', 'status');
    this._build();
    void this.refresh();
    this._timer = window.setInterval(() => {
      if (this.node.isConnected) {
        void this.refresh();
      }
    }, REFRESH_MS);
  }

  dispose(): void {
    window.clearInterval(this._timer);
  }

  get isOwner(): boolean {
    return this._me.role === 'owner';
  }

  /** Ask the server (and through it the sessions service) again. */
  async refresh(): Promise<void> {
    try {
      const presence = await fetchPresence();
      if (presence) {
        this._showPresence(presence);
      }
    } catch (reason) {
      this._connected.replaceChildren(
        el('li', 'visa-sharing-empty', String((reason as Error).message))
      );
    }
    if (!this.isOwner && this._me.role !== 'collaborator' && this._me.role !== 'support') {
      return;
    }
    try {
      const members = await fetchMembers();
      if (members) {
        this._showMembers(members);
      }
      if (this.isOwner) {
        const requests = await fetchRequests();
        this._showRequests(requests?.requests ?? []);
      }
      this.node.dataset.service = 'ok';
    } catch (reason) {
      this.node.dataset.service = 'unavailable';
      this._members.replaceChildren(
        el('li', 'visa-sharing-empty', String((reason as Error).message))
      );
    }
  }

  private _build(): void {
    const parts: HTMLElement[] = [el('h3', '', 'People here now'), this._connected];
    if (this.isOwner) {
      parts.push(
        el('h3', '', 'Share with…'),
        this._shareForm(),
        this._message,
        el('h3', '', 'Members'),
        this._members,
        el('h3', '', 'Support requests'),
        this._requests,
        el('h3', '', 'While I am away'),
        this._awayForm()
      );
    } else {
      parts.push(el('h3', '', 'Members'), this._members);
    }
    this.node.replaceChildren(...parts);
  }

  private _shareForm(): HTMLElement {
    const form = el('form', 'visa-sharing-share');
    const input = el('input');
    input.name = 'user';
    input.placeholder = 'Name or user name';
    input.setAttribute('aria-label', 'Share with (user name)');
    input.autocomplete = 'off';
    const list = el('datalist');
    list.id = `visa-sharing-candidates-${Math.random().toString(36).slice(2)}`;
    input.setAttribute('list', list.id);
    const role = el('select');
    role.name = 'role';
    role.setAttribute('aria-label', 'Role');
    for (const [value, label] of [
      ['collaborator', 'as collaborator (Lab and desktop)'],
      ['guest', 'as guest (watch the desktop)']
    ]) {
      const option = el('option', '', label);
      option.value = value;
      role.append(option);
    }
    const button = el('button', 'jp-mod-styled jp-mod-accept visa-sharing-share-button', 'Share');
    button.type = 'submit';
    let pending = 0;
    input.addEventListener('input', () => {
      window.clearTimeout(pending);
      pending = window.setTimeout(async () => {
        try {
          const found = await fetchCandidates(input.value);
          list.replaceChildren(
            ...(found?.candidates ?? []).map(candidate => {
              const option = el('option');
              option.value = candidate.username;
              option.label = `${candidate.name}${candidate.member ? ' — experiment member' : ''}`;
              return option;
            })
          );
        } catch {
          // no suggestions: she can still type the name
        }
      }, 150);
    });
    form.addEventListener('submit', async event => {
      event.preventDefault();
      const user = input.value.trim();
      if (!user) {
        return;
      }
      button.disabled = true;
      try {
        await share(user, role.value);
        this._say(`Shared with ${user} as ${role.value}.`, false);
        input.value = '';
        await this.refresh();
      } catch (reason) {
        this._say((reason as SharingError).message, true);
      } finally {
        button.disabled = false;
      }
    });
    form.append(input, list, role, button);
    return form;
  }

  private _awayForm(): HTMLElement {
    const form = el('div', 'visa-sharing-away');
    const select = el('select', 'visa-sharing-owner-away');
    select.setAttribute('aria-label', 'While I am away');
    for (const [value, label] of AWAY_CHOICES) {
      const option = el('option', '', label);
      option.value = value;
      select.append(option);
    }
    select.value = this._me.owner_away;
    const label = el('label', 'visa-sharing-unrestricted-label');
    const box = el('input', 'visa-sharing-unrestricted');
    box.type = 'checkbox';
    box.checked = this._me.unrestricted;
    label.append(
      box,
      document.createTextNode(
        ' Unrestricted access: the others carry on as if I were here while I am away'
      )
    );
    const save = async () => {
      try {
        await saveSettings({ owner_away: select.value, unrestricted: box.checked });
        this._say('Saved.', false);
      } catch (reason) {
        this._say((reason as Error).message, true);
      }
    };
    select.addEventListener('change', save);
    box.addEventListener('change', save);
    this._away = select;
    this._unrestricted = box;
    form.append(select, label);
    return form;
  }

  private _showPresence(presence: IPresence): void {
    if (presence.connected.length === 0) {
      this._connected.replaceChildren(el('li', 'visa-sharing-empty', 'Nobody is connected.'));
    } else {
      this._connected.replaceChildren(
        ...presence.connected.map(person => {
          const item = el('li');
          item.dataset.user = person.name;
          item.dataset.role = person.role ?? '';
          const since = person.since ? `since ${formatDateTime(person.since)}` : '';
          item.append(
            el('strong', '', person.name),
            el('span', 'visa-sharing-role', ` ${person.role_title} `),
            el('span', 'visa-sharing-since', `${since} · ${connectionText(person)}`)
          );
          if (person.restricted) {
            item.append(el('div', 'visa-sharing-restricted', person.restricted));
          }
          return item;
        })
      );
    }
    this.node.dataset.ownerPresent = String(presence.owner_present);
    if (this._away && document.activeElement !== this._away) {
      this._away.value = presence.owner_away;
    }
    if (this._unrestricted && document.activeElement !== this._unrestricted) {
      this._unrestricted.checked = presence.unrestricted;
    }
  }

  private _showMembers(members: IMembers): void {
    if (members.members.length === 0) {
      this._members.replaceChildren(
        el('li', 'visa-sharing-empty', 'Not shared with anyone.')
      );
      return;
    }
    this._members.replaceChildren(
      ...members.members.map(member => {
        const item = el('li');
        item.dataset.user = member.user;
        item.dataset.role = member.role;
        const until = member.expires_at ? `, until ${formatDateTime(member.expires_at)}` : '';
        item.append(
          el('strong', '', member.name || member.user),
          el('span', 'visa-sharing-role', ` ${member.role}${until}`)
        );
        if (this.isOwner) {
          const button = el('button', 'jp-mod-styled jp-mod-warn visa-sharing-revoke', 'Revoke');
          button.type = 'button';
          button.title = `Take ${member.user}'s access away now`;
          button.addEventListener('click', async () => {
            button.disabled = true;
            try {
              await revoke(member.user);
              this._say(`${member.user} no longer has access.`, false);
              await this.refresh();
            } catch (reason) {
              this._say((reason as Error).message, true);
              button.disabled = false;
            }
          });
          item.append(button);
        }
        return item;
      })
    );
  }

  private _showRequests(requests: ISupportRequest[]): void {
    const pending = requests.filter(request => request.status === 'pending');
    if (pending.length === 0) {
      this._requests.replaceChildren(el('li', 'visa-sharing-empty', 'No pending request.'));
      return;
    }
    this._requests.replaceChildren(
      ...pending.map(request => {
        const item = el('li');
        item.dataset.request = String(request.id);
        item.dataset.requester = request.requester;
        item.append(
          el('strong', '', request.requester_name || request.requester),
          el('span', '', ` asks to help (${formatDateTime(request.created_at)})`)
        );
        if (request.comment) {
          item.append(el('q', 'visa-sharing-comment', request.comment));
        }
        const actions = el('div', 'visa-sharing-request-actions');
        for (const [decision, label, classes] of [
          ['support', 'Accept as support', 'jp-mod-accept'],
          ['guest', 'Accept as guest', ''],
          ['refuse', 'Refuse', 'jp-mod-warn']
        ] as const) {
          const button = el('button', `jp-mod-styled ${classes}`, label);
          button.type = 'button';
          button.dataset.decision = decision;
          button.addEventListener('click', async () => {
            try {
              await answerRequest(request.id, decision);
              this._say(`${label}: ${request.requester}.`, false);
              await this.refresh();
            } catch (reason) {
              this._say((reason as Error).message, true);
            }
          });
          actions.append(button);
        }
        item.append(actions);
        return item;
      })
    );
  }

  private _say(text: string, error: boolean): void {
    this._message.textContent = text;
    this._message.classList.toggle('visa-sharing-error', error);
  }

  private _connected: HTMLUListElement;
  private _members: HTMLUListElement;
  private _requests: HTMLUListElement;
  private _message: HTMLParagraphElement;
  private _away: HTMLSelectElement | null = null;
  private _unrestricted: HTMLInputElement | null = null;
  private _timer = 0;
}

/** A visitor's banner above Lab: whose session this is, her role, and what is held back now. */
export class SharingBanner extends Widget {
  constructor(me: ISharingMe) {
    super();
    this.id = 'visa-sharing-banner';
    this.addClass('visa-sharing-banner');
    this.display(me);
  }

  display(me: ISharingMe): void {
    const experiment = me.experiment.code ? ` (${me.experiment.code})` : '';
    const text = `You are in ${me.owner}'s session${experiment} as ${me.role_title}.`;
    this.node.replaceChildren(
      el('span', 'visa-sharing-banner-text', text),
      el('span', 'visa-sharing-banner-reason', me.reason ? ` ${me.reason}` : '')
    );
    this.node.dataset.role = me.role ?? '';
    this.node.classList.toggle('visa-sharing-banner-restricted', Boolean(me.reason));
  }
}
