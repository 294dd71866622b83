// The view-only desktop page (visa/desktop-view): noVNC on the server's view-only websocket.
// Keys, pointer and clipboard are not sent by noVNC in view-only mode, and the server drops them anyway.
import RFB from './novnc/core/rfb.js';

const base = document.body.dataset.baseUrl;
const screen = document.getElementById('screen');
const message = document.getElementById('message');
const stateLabel = document.getElementById('state');
const DELAYS = [500, 1000, 2000, 4000, 8000];
let attempt = 0;
let rfb = null;

function show(state, text) {
  document.body.dataset.state = state;
  stateLabel.textContent = text;
}

function retry(why) {
  const delay = DELAYS[Math.min(attempt, DELAYS.length - 1)];
  attempt += 1;
  show('reconnecting', `${why} Trying again in ${Math.round(delay / 1000) || 1} s…`);
  window.setTimeout(connect, delay);
}

async function connect() {
  let status;
  try {
    const response = await fetch(base + 'visa/api/desktop', {
      credentials: 'same-origin',
      headers: { 'X-XSRFToken': document.body.dataset.xsrf }
    });
    if (!response.ok) {
      let text = `The desktop is not reachable (${response.status}).`;
      try {
        text = (await response.json()).message || text;
      } catch (e) {
        // not JSON: keep the status
      }
      message.hidden = false;
      message.textContent = text;
      retry('');
      return;
    }
    status = await response.json();
  } catch (e) {
    retry('The instance does not answer.');
    return;
  }
  if (!status.available) {
    message.hidden = false;
    message.textContent = status.message;
    retry('');
    return;
  }
  const url = new URL(base + status.view_only_websocket_path, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  rfb = new RFB(screen, url.href, { shared: true });
  rfb.viewOnly = true;
  rfb.scaleViewport = true;
  rfb.resizeSession = false;
  rfb.addEventListener('connect', () => {
    attempt = 0;
    message.hidden = true;
    show('connected', 'Connected — view only');
  });
  rfb.addEventListener('disconnect', () => {
    rfb = null;
    retry('Disconnected.');
  });
  rfb.addEventListener('clipboard', () => {
    // the server never sends the owner's clipboard to a view-only connection; counted for the tests
    document.body.dataset.clipboardEvents = String(Number(document.body.dataset.clipboardEvents || 0) + 1);
  });
}

show('connecting', 'Connecting…');
connect();
