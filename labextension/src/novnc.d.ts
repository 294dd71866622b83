// noVNC ≥ 1.7 is an ES module whose entry point ("@novnc/novnc") is core/rfb.js; its types are published for
// the older path "@novnc/novnc/lib/rfb" (@types/novnc__novnc), which is the same RFB class.
declare module '@novnc/novnc' {
  export { default } from '@novnc/novnc/lib/rfb';
}
