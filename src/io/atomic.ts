/** Atomic writes for the IO layer: the project's one implementation lives in src/util/fs.ts. */
export { writeFileAtomicAsync as writeFileAtomic, writeJsonAtomic, tempName as tempPathFor } from '../util/fs.js';
