// The leak guard's settings (src/core/leakGuard), shared by batch and the node: the attributes
// whose hits are only warnings, and the test-only variable that breaks the profile on purpose.
import { parseAttributeList, splitAttributeList } from './core/leakGuard/index.js';

/** The variable that breaks the profile on purpose, for tests of the leak guard only. */
export const TEST_KEEP_VARIABLE = 'DICOM_DEID_TEST_KEEP_ATTRIBUTES';

/**
 * The tags of a warn-only list (`--leak-guard-warn-only`, `leakGuardWarnOnly`): keywords or tags,
 * each entry possibly several separated by commas ('StudyDescription,0008,103E'). Throws the
 * error `fail` makes of a one-line message naming the entries that are no attribute (`what`:
 * the flag or setting, for the message).
 */
export function warnOnlyTags(entries: readonly string[], what: string, fail: (message: string) => Error): number[] {
  const list = parseAttributeList(entries.flatMap(splitAttributeList));
  if (list.unknown.length > 0) {
    throw fail(
      `${what}: not an attribute: ${list.unknown.map((u) => `"${u}"`).join(', ')} ` +
        '(give keywords such as StudyDescription or tags such as 0008,1030)',
    );
  }
  return [...list.tags];
}

/**
 * The attributes DICOM_DEID_TEST_KEEP_ATTRIBUTES (tests only) asks the profile to keep, to prove
 * that the guard holds what a broken rule lets through; `warn` is told when it is set.
 */
export function testOnlyKeep(
  env: NodeJS.ProcessEnv,
  fail: (message: string) => Error,
  warn: (message: string) => void,
): number[] {
  const tags = warnOnlyTags([env[TEST_KEEP_VARIABLE] ?? ''], TEST_KEEP_VARIABLE, fail);
  if (tags.length > 0) {
    warn(
      `${TEST_KEEP_VARIABLE} is set: the profile keeps ${tags.length} attribute(s) it would change ` +
        '(for tests of the leak guard only)',
    );
  }
  return tags;
}
