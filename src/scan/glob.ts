// A small glob matcher for `scan` (Node 20 has no fs.globSync). Patterns are '/'-separated paths with
// three wildcards, matched segment by segment the way a POSIX shell does:
//   *    any run of characters inside one path segment (not '/')
//   ?    exactly one character inside one path segment
//   **   as a whole segment: zero or more directory levels
// Like the shell, `*` and `?` do not match a leading '.' of a name and `**` does not enter dot
// directories; write the dot to reach them (`.cache/*`). A backslash makes the next character literal.
// Anything else ('[', '{', …) is literal. Pure except for expandGlob, which reads directories.
import fs from 'node:fs';

/** The segment that stands for any number of directory levels. */
const GLOBSTAR = '**';

/** Whether a path has an unescaped wildcard (and so must be expanded rather than opened). */
export function hasGlobMagic(p: string): boolean {
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '\\') i++;
    else if (c === '*' || c === '?') return true;
  }
  return false;
}

/** One segment pattern as an anchored regular expression (no '/' inside). */
export function segmentRegExp(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '\\' && i + 1 < segment.length) re += escapeRe(segment[++i]!);
    else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += escapeRe(c);
  }
  // a leading wildcard must not match a leading dot (shell rule for hidden names)
  const hiddenGuard = segment.startsWith('*') || segment.startsWith('?') ? '(?!\\.)' : '';
  return new RegExp(`^${hiddenGuard}${re}$`, 's');
}

function escapeRe(c: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(c) ? `\\${c}` : c;
}

/** The literal text of a segment without wildcards (escapes removed). */
function unescapeSegment(segment: string): string {
  return segment.replace(/\\(.)/gs, '$1');
}

/** Whether `rel` (a '/'-separated path relative to the glob's base) matches the pattern segments. */
export function matchSegments(patternSegs: readonly string[], pathSegs: readonly string[]): boolean {
  const regs = patternSegs.map((s) => (s === GLOBSTAR ? null : segmentRegExp(s)));
  const memo = new Map<number, boolean>();
  const go = (pi: number, si: number): boolean => {
    const key = pi * (pathSegs.length + 1) + si;
    const hit = memo.get(key);
    if (hit !== undefined) return hit;
    let ok: boolean;
    if (pi === regs.length) ok = si === pathSegs.length;
    else if (regs[pi] === null) {
      // ** : skip it, or let it swallow one more (non-hidden) directory level
      ok = go(pi + 1, si) || (si < pathSegs.length && !pathSegs[si]!.startsWith('.') && go(pi, si + 1));
    } else ok = si < pathSegs.length && regs[pi]!.test(pathSegs[si]!) && go(pi + 1, si + 1);
    memo.set(key, ok);
    return ok;
  };
  return go(0, 0);
}

/** Whether a '/'-separated path matches a glob pattern (both relative, or both absolute). */
export function globMatch(pattern: string, p: string): boolean {
  const split = (s: string): string[] => s.split('/').filter((x, i) => x !== '' || i === 0);
  return matchSegments(split(pattern), split(p));
}

export interface GlobExpansion {
  /** matching paths (files and directories), sorted, spelled from the pattern's literal base */
  matches: string[];
  /** directories that could not be read while matching: [path, one-line reason] */
  unreadable: [string, string][];
}

/**
 * Expand a glob against the file system. The literal leading segments form the base directory; from
 * there each segment is matched against directory entries (symbolic links followed, each directory
 * visited once per pattern position so link cycles end).
 */
export function expandGlob(pattern: string): GlobExpansion {
  const absolute = pattern.startsWith('/');
  const segs = pattern.split('/').filter((s) => s !== '' && s !== '.');
  let first = 0;
  while (first < segs.length && !hasGlobMagic(segs[first]!)) first++;
  const baseSegs = segs.slice(0, first).map(unescapeSegment);
  const base = baseSegs.length ? (absolute ? '/' : '') + baseSegs.join('/') : absolute ? '/' : '.';
  const rest = segs.slice(first);
  const regs = rest.map((s) => (s === GLOBSTAR ? null : segmentRegExp(s)));
  const matches = new Set<string>();
  const unreadable: [string, string][] = [];
  const seen = new Set<string>();
  const join = (dir: string, name: string): string => (dir === '.' ? name : dir === '/' ? `/${name}` : `${dir}/${name}`);

  const entriesOf = (dir: string): fs.Dirent[] | null => {
    try {
      return fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch (e) {
      unreadable.push([dir, `cannot read directory (${(e as NodeJS.ErrnoException).code ?? String(e)})`]);
      return null;
    }
  };
  const isDir = (p: string, d: fs.Dirent): boolean => {
    if (d.isDirectory()) return true;
    if (!d.isSymbolicLink()) return false;
    try {
      return fs.statSync(p).isDirectory();
    } catch {
      return false;
    }
  };
  const walk = (dir: string, pi: number): void => {
    if (pi === regs.length) {
      matches.add(dir);
      return;
    }
    let id: string;
    try {
      const st = fs.statSync(dir);
      id = `${st.dev}:${st.ino}:${pi}`;
    } catch {
      return; // the base does not exist: no matches
    }
    if (seen.has(id)) return;
    seen.add(id);
    const reg = regs[pi];
    if (reg === null) {
      walk(dir, pi + 1); // ** as zero levels
      const entries = entriesOf(dir);
      for (const d of entries ?? []) {
        const p = join(dir, d.name);
        if (!d.name.startsWith('.') && isDir(p, d)) walk(p, pi); // ** swallowing one more level
      }
      return;
    }
    const entries = entriesOf(dir);
    for (const d of entries ?? []) {
      if (!reg!.test(d.name)) continue;
      const p = join(dir, d.name);
      if (pi + 1 === regs.length) matches.add(p);
      else if (isDir(p, d)) walk(p, pi + 1);
    }
  };
  walk(base, 0);
  return { matches: [...matches].sort(), unreadable };
}
