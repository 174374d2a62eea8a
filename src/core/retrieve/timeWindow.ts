// The daily time window moves may start in (`--window 19:00-07:00`): clinical PACS are asked for
// bulk transfers at night (Niffler's 19:00-07:00 window). Local time of the machine.

/** A daily window in minutes after local midnight; `end` < `start` spans midnight. */
export interface TimeWindow {
  start: number;
  end: number;
}

/**
 * Parses `HH:MM-HH:MM` (24-hour clock, local time). A window whose start equals its end is
 * refused (all day is no window at all). Throws RangeError with a one-line message.
 */
export function parseTimeWindow(text: string): TimeWindow {
  const m = /^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/.exec(text);
  if (!m) throw new RangeError(`time window "${text}" must look like 19:00-07:00 (HH:MM-HH:MM, local time)`);
  const [h1, m1, h2, m2] = [m[1], m[2], m[3], m[4]].map(Number) as [number, number, number, number];
  if (h1 > 23 || h2 > 23 || m1 > 59 || m2 > 59) {
    throw new RangeError(`time window "${text}": hours are 00-23 and minutes 00-59`);
  }
  const w = { start: h1 * 60 + m1, end: h2 * 60 + m2 };
  if (w.start === w.end) throw new RangeError(`time window "${text}" starts when it ends`);
  return w;
}

/** "19:00-07:00". */
export function formatTimeWindow(w: TimeWindow): string {
  const hm = (n: number): string => `${String(Math.floor(n / 60)).padStart(2, '0')}:${String(n % 60).padStart(2, '0')}`;
  return `${hm(w.start)}-${hm(w.end)}`;
}

function minuteOfDay(d: Date): number {
  return d.getHours() * 60 + d.getMinutes();
}

/** True when `at` (local time) is inside the window: from its start, up to but not including its end. */
export function insideTimeWindow(w: TimeWindow, at: Date): boolean {
  const t = minuteOfDay(at);
  return w.start < w.end ? t >= w.start && t < w.end : t >= w.start || t < w.end;
}

/** When the window next opens after `at` (local time), or `at` itself when it is open. */
export function nextWindowOpening(w: TimeWindow, at: Date): Date {
  if (insideTimeWindow(w, at)) return at;
  const next = new Date(at);
  next.setHours(Math.floor(w.start / 60), w.start % 60, 0, 0);
  if (next.getTime() <= at.getTime()) next.setDate(next.getDate() + 1);
  return next;
}
