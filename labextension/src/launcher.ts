/**
 * visa-hub's section of JupyterLab's launcher. Other visa-hub plugins add their cards with this category:
 *
 *     launcher.add({ command: 'my:command', category: VISA_LAUNCHER_CATEGORY, rank: 10 });
 *
 * Desktop applications marked `X-VisaHub-Lab=true` in their desktop entry appear here by themselves.
 */
export const VISA_LAUNCHER_CATEGORY = 'VISA';

/** Ranks inside the section: the Desktop first, the Session second, applications after. */
export const LAUNCHER_RANK = { desktop: 0, session: 1, applications: 10 };

/**
 * `?visa-open=desktop` (or `session`) in Lab's URL: what to open once Lab has restored its layout.
 * Read when this module loads (before Lab's router handles the address) and removed from the address bar, so
 * a reload does not open it again.
 */
export function requestedOpen(): string | null {
  return REQUESTED;
}

function readRequested(): string | null {
  try {
    const url = new URL(window.location.href);
    const value = url.searchParams.get('visa-open');
    if (value !== null) {
      url.searchParams.delete('visa-open');
      window.history.replaceState(window.history.state, '', url.toString());
    }
    return value;
  } catch {
    return null;
  }
}

const REQUESTED = readRequested();
