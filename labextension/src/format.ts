/** Pure formatting helpers: no DOM, no network. */

/** Under this many seconds left the status turns to a warning. */
export const WARNING_SECONDS = 3600;

/** `11h 59m left`, `42m left`, `expired`. */
export function formatTimeLeft(seconds: number): string {
  if (seconds <= 0) {
    return 'expired';
  }
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  if (hours >= 48) {
    return `${Math.floor(hours / 24)}d ${hours % 24}h left`;
  }
  if (hours > 0) {
    return `${hours}h ${minutes % 60}m left`;
  }
  return minutes > 0 ? `${minutes}m left` : '<1m left';
}

/** The status bar text: `LOKI-2026-042 · LoKI · 11h 59m left`. */
export function statusText(
  code: string,
  instrument: string,
  seconds: number
): string {
  return `${code} · ${instrument} · ${formatTimeLeft(seconds)}`;
}

/** `'ok'`, `'warning'` (under an hour) or `'expired'`. */
export function urgency(seconds: number): 'ok' | 'warning' | 'expired' {
  if (seconds <= 0) {
    return 'expired';
  }
  return seconds < WARNING_SECONDS ? 'warning' : 'ok';
}

/** `large (16 CPUs, 64 GB, 1 GPU)`. */
export function describeFlavour(flavour: {
  name: string;
  cpus: number;
  memory_gb: number;
  gpus: number;
}): string {
  const parts = [`${flavour.cpus} CPUs`, `${flavour.memory_gb} GB`];
  if (flavour.gpus > 0) {
    parts.push(`${flavour.gpus} GPU${flavour.gpus === 1 ? '' : 's'}`);
  }
  return `${flavour.name} (${parts.join(', ')})`;
}

/** One locale-aware format for every date the extension shows: `27 Nov 2026, 14:05` (in her browser's locale). */
const DATE_TIME = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium',
  timeStyle: 'short'
});

/** An ISO 8601 time in the browser's locale and time zone; the text as is when it is not a date. */
export function formatDateTime(iso: string): string {
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? iso : DATE_TIME.format(when);
}
