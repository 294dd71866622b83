import { LabIcon } from '@jupyterlab/ui-components';

/** A monitor: the Desktop tab, its launcher card and menu items. */
export const desktopIcon = new LabIcon({
  name: 'visa-hub:desktop',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 4h18a1 1 0 0 1 1 1v11a1 1 0 0 1-1 1h-7v2h3v2H7v-2h3v-2H3a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1zm1 2v9h16V6H4z"/>
    <path d="M5 13h14v2H5z"/>
  </g>
</svg>`
});

/** A badge with a clock: the Session panel (what this instance is for, and until when). */
export const sessionIcon = new LabIcon({
  name: 'visa-hub:session',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M4 3h11a1 1 0 0 1 1 1v5.1a6.5 6.5 0 0 0-2 .4V5H5v14h5.5a6.5 6.5 0 0 0 1 2H4a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1z"/>
    <path d="M7 7h5v2H7zm0 4h4v2H7zm0 4h3v2H7z"/>
    <path d="M17 11a5 5 0 1 1 0 10 5 5 0 0 1 0-10zm0 2a3 3 0 1 0 0 6 3 3 0 0 0 0-6zm-.6.9h1.2v2.2l1.6 1-.6 1-2.2-1.3z"/>
  </g>
</svg>`
});

export const fullscreenIcon = new LabIcon({
  name: 'visa-hub:fullscreen',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M4 4h6v2H6v4H4V4zm10 0h6v6h-2V6h-4V4zM4 14h2v4h4v2H4v-6zm14 0h2v6h-6v-2h4v-4z"/>
</svg>`
});
