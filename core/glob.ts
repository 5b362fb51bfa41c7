/**
 * Glob matching for include/exclude and routing rules, with the semantics users expect from
 * rsync/.gitignore: a pattern without `/` matches the file name at any depth (`*.csv` matches
 * `a/b/x.csv`); a pattern with `/` matches the whole relative path (`in/*.csv`, `**\/tmp/**`);
 * a leading `/` or `./` anchors at the root and is dropped; dotfiles match `*`.
 */
import picomatch from 'picomatch';

export type PathPredicate = (path: string) => boolean;

const OPTIONS: picomatch.PicomatchOptions = { dot: true, posix: true };

function compileOne(pattern: string): PathPredicate {
  const anchored = pattern.replace(/^(\.\/|\/)+/, '');
  // picomatch's own matcher (which also refuses a bad pattern, with its message) builds a result
  // object per call; its answer is exactly this: never for '', the pattern itself, or the regex.
  picomatch(anchored, OPTIONS);
  const regex = picomatch.makeRe(anchored, OPTIONS);
  const matches = (s: string) => s !== '' && (s === anchored || regex.test(s));
  if (anchored.includes('/') || anchored !== pattern) return matches;
  return (path) => matches(path.slice(path.lastIndexOf('/') + 1));
}

/** A predicate true when `path` (relative, POSIX) matches any of `patterns`. */
export function compileGlobs(patterns: string | readonly string[]): PathPredicate {
  const list = typeof patterns === 'string' ? [patterns] : patterns;
  const predicates = list.map(compileOne);
  if (predicates.length === 1) return predicates[0];
  return (path) => predicates.some((matches) => matches(path));
}

/**
 * A predicate for include/exclude lists: included (no list or an empty list includes
 * everything) and not excluded.
 */
export function compileIncludeExclude(
  include?: string | readonly string[],
  exclude?: string | readonly string[],
): PathPredicate {
  const included = include === undefined || include.length === 0 ? undefined : compileGlobs(include);
  const excluded = exclude === undefined || exclude.length === 0 ? undefined : compileGlobs(exclude);
  return (path) => (included === undefined || included(path)) && (excluded === undefined || !excluded(path));
}
