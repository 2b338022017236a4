/**
 * LLMRec folders as input: every file of a folder may be anything (a link to /etc/passwd, a hand-edited
 * manifest). Errors name the file and the field or position, never the file's text, and settings are
 * checked against their limits before anything is built from them.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { tempDir } from '../data/test-utils/tmp.js';
import { decoderPreset } from '../io/hf-config.js';
import { Decoder } from '../nn/decoder.js';
import { trainTokenizer } from '../tokenizer/index.js';
import { LLMRec } from './llmrec.js';
import { LLMREC_FILE, loadLLMRec, saveLLMRec } from './llmrec-io.js';
import { PromptBuilder } from './prompt.js';

const NAMES = ['red apple', 'green pear', 'blue plum', 'gold melon', 'pink peach', 'black grape'];
const SECRET = 'root:x:0:0:root:/root:/bin/bash\nsecret-api-key=abc123\n';

describe('LLMRec folders as input', () => {
  let dir: string;
  let good: string;
  let n = 0;
  /** A fresh copy of the saved folder. */
  const copy = () => {
    const to = join(dir, `copy${n++}`);
    cpSync(good, to, { recursive: true });
    return to;
  };
  const refused = async (folder: string, message: RegExp) => {
    await assert.rejects(loadLLMRec(folder, NAMES), (e: Error) => {
      assert.match(e.message, message);
      assert.doesNotMatch(e.message, /root:x|secret-api-key|abc123/, 'the file text is not quoted');
      return true;
    });
  };

  before(async () => {
    dir = tempDir('evorec-llmrec-io-');
    const { tokenizer } = trainTokenizer([...NAMES, 'A customer bought these items, oldest first: The next item the customer buys is'], { vocabSize: 300 });
    const decoder = new Decoder(decoderPreset('tiny', { vocabSize: tokenizer.vocabSize }), { seed: 1 });
    decoder.addAdapter('default', { r: 2, alpha: 4, dropout: 0 }, { seed: 1, freezeBase: true });
    good = join(dir, 'good');
    await saveLLMRec(good, new LLMRec(decoder, new PromptBuilder(tokenizer, NAMES, { history: 3 }), { calibration: 'none' }));
    writeFileSync(join(dir, 'secret.txt'), SECRET);
  });

  it('loads the folder as saved, with its scoring settings', async () => {
    const { model } = await loadLLMRec(good, NAMES);
    assert.deepEqual(model.scoring, { reduction: 'mean', calibration: 'none', priorWeight: 1 });
    assert.equal(model.prompts.options.history, 3);
  });

  it('keeps a partial prior weight, and refuses one outside [0, 1] naming the field', async () => {
    const f = copy();
    const file = join(f, LLMREC_FILE);
    const m = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...m, scoring: { reduction: 'mean', calibration: 'prior', priorWeight: 0.375 } }));
    assert.deepEqual((await loadLLMRec(f, NAMES)).model.scoring, { reduction: 'mean', calibration: 'prior', priorWeight: 0.375 });
    writeFileSync(file, JSON.stringify({ ...m, scoring: { calibration: 'prior', priorWeight: 2 } }));
    await refused(f, new RegExp(`${file.replace(/[.]/g, '\\.')}: field "scoring\\.priorWeight": must be a number in \\[0, 1\\], got 2$`));
  });

  it('a JSON file that is not JSON: the file and the position, never its text', async () => {
    for (const name of [LLMREC_FILE, 'config.json', 'tokenizer.json', join('adapter', 'adapter_config.json')]) {
      const f = copy();
      writeFileSync(join(f, name), SECRET);
      await refused(f, new RegExp(`${join(f, name).replace(/[.]/g, '\\.')}: invalid JSON at line 1, column 1$`));
      // The same through a symlink (the review's llmrec.json -> /etc/passwd).
      const g = copy();
      rmSync(join(g, name));
      symlinkSync(join(dir, 'secret.txt'), join(g, name));
      await refused(g, /invalid JSON at line 1, column 1$/);
    }
    // A safetensors header that is not JSON.
    const f = copy();
    const header = Buffer.from(SECRET);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(join(f, 'model.safetensors'), Buffer.concat([len, header]));
    await refused(f, /model\.safetensors: header is not valid JSON at line 1, column 1$/);
  });

  it('manifest fields are checked: prompt sizes against their limits, scoring values, the format', async () => {
    const edit = (patch: (m: Record<string, any>) => void) => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const f = copy();
      const m = JSON.parse(readFileSync(join(f, LLMREC_FILE), 'utf8'));
      patch(m);
      writeFileSync(join(f, LLMREC_FILE), JSON.stringify(m));
      return f;
    };
    const t0 = performance.now();
    await refused(edit((m) => (m.prompt.history = 1e9)), /llmrec\.json: field "prompt\.history": must be an integer in \[1, 1000\], got 1000000000/);
    assert.ok(performance.now() - t0 < 2000, 'refused before building a billion prompt prefixes');
    await refused(edit((m) => (m.prompt.titleTokens = -1)), /field "prompt\.titleTokens": must be an integer in \[1, 4096\], got -1/);
    await refused(edit((m) => (m.prompt.targetTokens = '32')), /field "prompt\.targetTokens": must be an integer in \[1, 4096\], got string/);
    await refused(edit((m) => (m.prompt.template = { instruction: 7 })), /field "prompt\.template\.instruction": must be a string, got number/);
    await refused(edit((m) => (m.scoring = { calibration: 'bogus' })), /field "scoring\.calibration": must be "none" or "prior"/);
    await refused(edit((m) => (m.format = 'evorec-llmrec/0')), /field "format": expected "evorec-llmrec\/1", got "evorec-llmrec\/0"/);
    await refused(edit((m) => (m.format = SECRET)), /field "format": expected "evorec-llmrec\/1", got another string$/);
    await refused(edit((m) => (m.prompt = null)), /field "prompt": must be an object, got null/);
  });

  it("the manifest's adapter must be a folder inside the LLMRec folder, symlinks resolved", async () => {
    const outside = join(dir, 'outside-adapter');
    cpSync(join(good, 'adapter'), outside, { recursive: true });
    const edit = (adapter: unknown) => {
      const f = copy();
      const m = JSON.parse(readFileSync(join(f, LLMREC_FILE), 'utf8'));
      writeFileSync(join(f, LLMREC_FILE), JSON.stringify({ ...m, adapter }));
      return f;
    };
    await refused(edit('../outside-adapter'), /llmrec\.json: field "adapter": must be a folder inside the LLMRec folder$/);
    await refused(edit(outside), /field "adapter": must be a folder inside the LLMRec folder$/);
    await refused(edit(7), /field "adapter": must be a sub-folder name or null, got number/);
    const f = edit('linked');
    symlinkSync(outside, join(f, 'linked'));
    await refused(f, /field "adapter": must be a folder inside the LLMRec folder \(it is a link to a folder outside\)/);
    // A link inside the folder is fine.
    const g = edit('linked');
    mkdirSync(join(g, 'real'));
    cpSync(join(g, 'adapter'), join(g, 'real', 'adapter'), { recursive: true });
    symlinkSync(join(g, 'real', 'adapter'), join(g, 'linked'));
    await loadLLMRec(g, NAMES);
  });
});
