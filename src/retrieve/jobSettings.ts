// A retrieve job's settings: what it takes (the plan: date window, modalities) and how it runs
// (pace, timers). They are stored with the job (retrieve_job.params, JSON) so that `resume` runs
// it as it was started; the plan part also names the job (its plan key), so that a rerun of the
// same command continues the same job.
import { parseTimeWindow } from '../core/retrieve/timeWindow.js';

export interface RetrieveSettings {
  /** StudyDate window around each row's Surgery_Date, in days; undefined sides are open. */
  daysBefore?: number;
  daysAfter?: number;
  /** Keep studies with one of these modalities (upper case); empty for all. */
  modalities: string[];
  /** Query only and plan: no move. */
  dryRun: boolean;
  /** C-MOVEs at a time (default 1: clinical PACS suffer under parallel moves). */
  concurrency: number;
  /** Daily local time window moves may start in ("19:00-07:00"), or undefined for any time. */
  window?: string;
  /** A study is done when no instance arrived for this long after its move's final response (ms). */
  quietMs: number;
  /** Longest one study's move and arrivals may take (ms). */
  studyTimeoutMs: number;
  /** C-MOVEs per study before it is reported incomplete or failed. */
  maxAttempts: number;
  /** How long to keep trying while the PACS is unreachable or busy before pausing the job (ms). */
  pacsWaitMs: number;
}

export const DEFAULT_SETTINGS: Omit<RetrieveSettings, 'modalities' | 'dryRun'> = {
  concurrency: 1,
  quietMs: 30_000,
  studyTimeoutMs: 2 * 3600_000,
  maxAttempts: 3,
  pacsWaitMs: 300_000,
};

/** Checks settings; throws RangeError with a one-line message naming the option. */
export function checkSettings(s: RetrieveSettings): RetrieveSettings {
  const whole = (v: number | undefined, what: string, min: number): void => {
    if (v !== undefined && (!Number.isInteger(v) || v < min)) {
      throw new RangeError(`${what} must be a whole number of at least ${min} (got ${v})`);
    }
  };
  whole(s.daysBefore, '--days-before', 0);
  whole(s.daysAfter, '--days-after', 0);
  whole(s.concurrency, '--concurrency', 1);
  whole(s.maxAttempts, '--max-attempts', 1);
  for (const [v, what] of [
    [s.quietMs, '--quiet-seconds'],
    [s.studyTimeoutMs, '--study-timeout'],
    [s.pacsWaitMs, '--pacs-wait'],
  ] as const) {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`${what} must be a number of seconds, 0 or more`);
  }
  if (s.concurrency > 16) throw new RangeError('--concurrency must be at most 16');
  for (const m of s.modalities) {
    if (!/^[A-Z0-9_ ]{1,16}$/.test(m)) throw new RangeError(`--modalities: "${m}" is not a modality code (CT, MR...)`);
  }
  if (s.window !== undefined) parseTimeWindow(s.window);
  return s;
}

/** The plan part, canonical: jobs with the same CSV, PACS and plan key are one job. */
export function planKeyOf(s: RetrieveSettings): string {
  return JSON.stringify({
    daysBefore: s.daysBefore ?? null,
    daysAfter: s.daysAfter ?? null,
    modalities: [...s.modalities].sort(),
    dryRun: s.dryRun,
  });
}

/** The settings as stored with the job. */
export function settingsToParams(s: RetrieveSettings): string {
  return JSON.stringify(s);
}

/** The settings of a stored job; throws Error when they cannot be read. */
export function settingsFromParams(params: string): RetrieveSettings {
  const v = JSON.parse(params) as Partial<RetrieveSettings>;
  return checkSettings({ ...DEFAULT_SETTINGS, modalities: [], dryRun: false, ...v });
}
