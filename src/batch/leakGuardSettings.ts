// The batch's leak guard settings, from its options and the environment.
import { parseAttributeList, splitAttributeList } from '../core/leakGuard/index.js';
import { UsageError } from '../errors.js';

/** The variable that breaks the profile on purpose, for tests of the leak guard only. */
export const TEST_KEEP_VARIABLE = 'DICOM_DEID_TEST_KEEP_ATTRIBUTES';

/**
 * The tags of `warnOnly` (--leak-guard-warn-only: keywords or tags, each entry may hold several
 * separated by commas), and those of the test-only variable DICOM_DEID_TEST_KEEP_ATTRIBUTES
 * (attributes the rules then keep, to prove the guard holds what they let through; a warning on
 * stderr says the profile is broken). Throws UsageError naming an entry that is no attribute.
 */
export function leakGuardSettings(
  warnOnly: readonly string[],
  env: NodeJS.ProcessEnv,
): { leakGuardWarnOnly: number[]; testOnlyKeep: number[] } {
  const list = parseAttributeList(warnOnly.flatMap(splitAttributeList));
  if (list.unknown.length > 0) {
    throw new UsageError(
      `--leak-guard-warn-only: not an attribute: ${list.unknown.map((u) => `"${u}"`).join(', ')} ` +
        '(give keywords such as StudyDescription or tags such as 0008,1030)',
    );
  }
  const keep = parseAttributeList(splitAttributeList(env[TEST_KEEP_VARIABLE] ?? ''));
  if (keep.unknown.length > 0)
    throw new UsageError(`${TEST_KEEP_VARIABLE}: not an attribute: ${keep.unknown.join(', ')}`);
  if (keep.tags.size > 0) {
    process.stderr.write(
      `dicom-deid: warning: ${TEST_KEEP_VARIABLE} is set: the profile keeps ${keep.tags.size} attribute(s) it would ` +
        'change (for tests of the leak guard only)\n',
    );
  }
  return { leakGuardWarnOnly: [...list.tags], testOnlyKeep: [...keep.tags] };
}
