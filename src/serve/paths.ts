/**
 * Model folders the service is asked to read are confined to its models root: a folder given by a client
 * (POST /v1/versions) or on the command line (--model) must lie inside the root once every symlink is
 * resolved, and so must every file and folder in it (a llmrec.json linked to /etc/passwd, an adapter
 * folder linked elsewhere). Relative folders are taken relative to the root.
 */
import { lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';

/** Is `p` inside `root` (or the root itself)? Both absolute and already resolved. */
export function isInside(root: string, p: string): boolean {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

export class FolderError extends Error {}

/** The models root as an absolute path with its symlinks resolved; it must be a folder. */
export function modelsRootPath(root: string): string {
  let real: string;
  try {
    real = realpathSync(resolve(root));
  } catch {
    throw new RangeError(`models root ${resolve(root)} does not exist (--models-root)`);
  }
  if (!statSync(real).isDirectory()) throw new RangeError(`models root ${real} is not a folder (--models-root)`);
  return real;
}

/** Deepest sub-folder level and entry count checked inside a model folder. */
const MAX_DEPTH = 4;
const MAX_ENTRIES = 10_000;

/**
 * The real path of `folder` (relative to `root` unless absolute) after checking that it and everything in
 * it resolve inside `root` (already a real path). Errors name the folder or the entry, never a link's target.
 */
export function confineFolder(root: string, folder: string): string {
  const given = resolve(root, folder);
  const outside = () => new FolderError(`${given} is outside the models root ${root} (--models-root; symlinks resolved)`);
  // A relative folder that leaves the root as written is refused without looking at the file system (the
  // answer does not tell whether it exists). An absolute one may reach the root through a symlinked prefix.
  if (!isAbsolute(folder) && !isInside(root, given)) throw outside();
  let real: string;
  try {
    real = realpathSync(given);
  } catch {
    throw new FolderError(`${given}: not found`);
  }
  if (!isInside(root, real)) throw outside();
  if (!statSync(real).isDirectory()) throw new FolderError(`${given}: not a folder`);
  let entries = 0;
  const walk = (dir: string, shown: string, depth: number) => {
    for (const name of readdirSync(dir)) {
      if (++entries > MAX_ENTRIES) throw new FolderError(`${given}: more than ${MAX_ENTRIES} files (not a model folder)`);
      const p = join(dir, name);
      const label = join(shown, name);
      let target = p;
      if (lstatSync(p).isSymbolicLink()) {
        try {
          target = realpathSync(p);
        } catch {
          throw new FolderError(`${label} is a broken link`);
        }
        if (!isInside(root, target)) throw new FolderError(`${label} is a link to a file outside the models root ${root}`);
      }
      if (statSync(target).isDirectory() && depth < MAX_DEPTH) walk(target, label, depth + 1);
    }
  };
  walk(real, given, 1);
  return real;
}
