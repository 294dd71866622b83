import RFB from '@novnc/novnc';
import { Widget } from '@lumino/widgets';

import {
  desktopWebsocketUrl,
  fetchDesktopStatus,
  IDesktopStatus
} from './desktopApi';

/** The states a Desktop tab shows; also its `data-state` attribute (tests and benchmarks read it). */
export type DesktopState =
  | 'connecting'
  | 'connected'
  | 'reconnecting'
  | 'unavailable';

/** Waits between reconnection attempts after a dropped connection, in ms (the last one repeats). */
const RECONNECT_DELAYS = [500, 1000, 2000, 4000, 8000];

let counter = 0;

/**
 * The remote desktop in a JupyterLab tab: noVNC's RFB client on the visa-hub websocket.
 *
 * The remote screen follows the tab's size (noVNC's `resizeSession`), a dropped connection is retried with
 * backoff, and the desktop's clipboard is shown in (and can be sent from) the clipboard bar.
 */
export class DesktopView extends Widget {
  constructor() {
    super();
    this.id = `visa-desktop-${++counter}`;
    this.addClass('visa-desktop');
    this._screen = document.createElement('div');
    this._screen.className = 'visa-desktop-screen';
    this._message = document.createElement('div');
    this._message.className = 'visa-desktop-message';
    this._clipboard = this._makeClipboardBar();
    this.node.append(this._clipboard, this._screen, this._message);
    this._setState('connecting', 'Starting the desktop…');
  }

  /** The desktop's clipboard as last received (empty until something was copied there). */
  get remoteClipboard(): string {
    return this._remoteClipboard;
  }

  get state(): DesktopState {
    return this.node.dataset.state as DesktopState;
  }

  /** Whether this tab only watches (the server said so, or it was opened view-only). */
  get viewOnly(): boolean {
    return this._viewOnly;
  }

  /** Connect (again): ask the server whether the desktop can run, then open the websocket. */
  async connect(): Promise<void> {
    this._cancelReconnect();
    this._disconnectQuietly();
    let status: IDesktopStatus | null;
    try {
      status = await fetchDesktopStatus();
    } catch (reason) {
      this._scheduleReconnect(`The server does not answer (${reason}).`);
      return;
    }
    if (this.isDisposed) {
      return;
    }
    if (status === null) {
      this._setState(
        'unavailable',
        'This server has no visa-hub desktop (the visa-hub server extension is not enabled).'
      );
      return;
    }
    if (!status.available) {
      this._setState(
        'unavailable',
        status.message ?? 'The desktop is not available.'
      );
      return;
    }
    this._viewOnly = status.view_only;
    this.title.label = this._viewOnly ? 'Desktop (view only)' : 'Desktop';
    this._clipboard.classList.toggle('visa-desktop-view-only', this._viewOnly);
    this._setState(
      this._attempt ? 'reconnecting' : 'connecting',
      status.running ? 'Connecting…' : 'Starting the desktop…'
    );
    const rfb = new RFB(
      this._screen,
      desktopWebsocketUrl(status.websocket_path),
      { shared: true, wsProtocols: ['binary'] }
    );
    rfb.viewOnly = this._viewOnly;
    rfb.resizeSession = !this._viewOnly;
    rfb.scaleViewport = this._viewOnly;
    rfb.focusOnClick = true;
    rfb.qualityLevel = 6;
    rfb.compressionLevel = 2;
    rfb.addEventListener('connect', () => {
      this._attempt = 0;
      this._setState('connected', '');
      if (this.isVisible) {
        rfb.focus();
      }
    });
    rfb.addEventListener('disconnect', event => {
      if (this._rfb !== rfb) {
        return; // an old connection we closed on purpose
      }
      this._rfb = null;
      const clean = (event as CustomEvent<{ clean: boolean }>).detail.clean;
      this._scheduleReconnect(
        clean ? 'The desktop closed the connection.' : 'Connection lost.'
      );
    });
    rfb.addEventListener('clipboard', event => {
      const text = (event as CustomEvent<{ text: string }>).detail.text;
      this._receiveClipboard(text);
    });
    rfb.addEventListener('desktopname', event => {
      const name = (event as CustomEvent<{ name: string }>).detail.name;
      this.title.caption = name;
    });
    this._rfb = rfb;
  }

  /** Send Ctrl+Alt+Del to the desktop. */
  sendCtrlAltDel(): void {
    this._rfb?.sendCtrlAltDel();
  }

  /** Put `text` on the desktop's clipboard (what a paste there inserts). */
  sendClipboard(text: string): void {
    this._rfb?.clipboardPasteFrom(text);
    this._clipboardText.value = text;
  }

  /** Show or hide the clipboard bar. */
  toggleClipboard(): void {
    this._clipboard.classList.toggle('visa-desktop-clipboard-open');
  }

  /** Full screen for this tab (Esc leaves it). */
  async toggleFullscreen(): Promise<void> {
    if (document.fullscreenElement) {
      await document.exitFullscreen();
    } else {
      await this.node.requestFullscreen();
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._cancelReconnect();
    this._disconnectQuietly();
    super.dispose();
  }

  protected onActivateRequest(): void {
    this._rfb?.focus();
  }

  private _makeClipboardBar(): HTMLElement {
    const bar = document.createElement('div');
    bar.className = 'visa-desktop-clipboard';
    const label = document.createElement('label');
    label.textContent = 'Desktop clipboard';
    this._clipboardText = document.createElement('textarea');
    this._clipboardText.rows = 2;
    this._clipboardText.placeholder =
      'Text copied on the desktop appears here. Type or paste here and press "Send to desktop".';
    label.append(this._clipboardText);
    const send = document.createElement('button');
    send.className = 'jp-mod-styled jp-mod-accept visa-desktop-clipboard-send';
    send.textContent = 'Send to desktop';
    send.onclick = () => this.sendClipboard(this._clipboardText.value);
    const copy = document.createElement('button');
    copy.className = 'jp-mod-styled visa-desktop-clipboard-copy';
    copy.textContent = 'Copy to browser';
    copy.onclick = () => {
      void navigator.clipboard
        ?.writeText(this._clipboardText.value)
        .catch(() => undefined);
    };
    bar.append(label, send, copy);
    return bar;
  }

  private _receiveClipboard(text: string): void {
    this._remoteClipboard = text;
    this._clipboardText.value = text;
    this.node.dataset.clipboard = String(++this._clipboardCount);
    // Best effort: the browser allows it only while the page has focus (and permission).
    void navigator.clipboard?.writeText(text).catch(() => undefined);
  }

  private _setState(state: DesktopState, message: string): void {
    this.node.dataset.state = state;
    this._message.textContent = message;
    this._message.classList.toggle('visa-desktop-message-hidden', !message);
    this._message.classList.toggle(
      'visa-desktop-message-error',
      state === 'unavailable'
    );
  }

  private _scheduleReconnect(reason: string): void {
    if (this.isDisposed) {
      return;
    }
    const delay =
      RECONNECT_DELAYS[Math.min(this._attempt, RECONNECT_DELAYS.length - 1)];
    this._attempt++;
    this._setState(
      'reconnecting',
      `${reason} Reconnecting in ${Math.round(delay / 100) / 10} s…`
    );
    this._reconnectTimer = window.setTimeout(() => {
      this._reconnectTimer = 0;
      void this.connect();
    }, delay);
  }

  private _cancelReconnect(): void {
    if (this._reconnectTimer) {
      window.clearTimeout(this._reconnectTimer);
      this._reconnectTimer = 0;
    }
  }

  private _disconnectQuietly(): void {
    const rfb = this._rfb;
    this._rfb = null;
    if (rfb) {
      try {
        rfb.disconnect();
      } catch {
        // already closed
      }
    }
  }

  private _screen: HTMLDivElement;
  private _message: HTMLDivElement;
  private _clipboard: HTMLElement;
  private _clipboardText!: HTMLTextAreaElement;
  private _rfb: RFB | null = null;
  private _attempt = 0;
  private _reconnectTimer = 0;
  private _viewOnly = false;
  private _remoteClipboard = '';
  private _clipboardCount = 0;
}
