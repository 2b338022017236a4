import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { prepare } from './prepare.js';
import { fixture, tempDir } from './test-utils/tmp.js';

function listFiles(dir: string, base = ''): string[] {
  return readdirSync(join(dir, base), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(dir, join(base, e.name)) : [join(base, e.name)],
  ).sort();
}

describe('prepare', async () => {
  const root = tempDir();
  const opts = (out: string) => ({ source: { data: 'movielens' }, periods: { periods: 2 }, out });
  const a = await prepare(opts(join(root, 'a')));
  const b = await prepare(opts(join(root, 'b')));

  it('gives byte-identical output and the same content hash for the same inputs', () => {
    assert.equal(a.hash, b.hash);
    const files = listFiles(a.out);
    assert.deepEqual(files, listFiles(b.out));
    assert.deepEqual(files, [
      'items.jsonl', 'manifest.json',
      'p0/released.jsonl', 'p0/test.jsonl', 'p0/train.jsonl', 'p0/valid.jsonl',
      'p1/released.jsonl', 'p1/test.jsonl', 'p1/train.jsonl', 'p1/valid.jsonl',
      'p2/released.jsonl', 'p2/test.jsonl', 'p2/train.jsonl', 'p2/valid.jsonl',
      'stats.json', 'stats.md',
    ]);
    for (const f of files) assert.ok(readFileSync(join(a.out, f)).equals(readFileSync(join(b.out, f))), f);
  });

  it('changes the hash when the seed changes', async () => {
    const c = await prepare({ ...opts(join(root, 'c')), candidates: { seed: 1 } });
    assert.notEqual(c.hash, a.hash);
  });

  it('writes rows that agree with the in-memory split', () => {
    const manifest = JSON.parse(readFileSync(join(a.out, 'manifest.json'), 'utf8'));
    assert.equal(manifest.hash, a.hash);
    for (const p of a.split.periods) {
      for (const role of ['train', 'released', 'valid', 'test'] as const) {
        const lines = readFileSync(join(a.out, `p${p.index}`, `${role}.jsonl`), 'utf8').split('\n').filter(Boolean);
        assert.equal(lines.length, p[role].length, `p${p.index}/${role}`);
      }
      const test = readFileSync(join(a.out, `p${p.index}`, 'test.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      for (const row of test) {
        assert.equal(row.candidates.length, 20);
        assert.equal(row.candidates_uniform.length, 20);
        assert.ok(row.candidates.includes(row.item));
        assert.ok(!row.history.includes(row.item));
        assert.ok(row.history.length >= 1 && row.history.length <= 10);
      }
    }
    const items = readFileSync(join(a.out, 'items.jsonl'), 'utf8').split('\n').filter(Boolean);
    assert.equal(items.length, 9724);
    assert.deepEqual(JSON.parse(items[0]), { item: a.split.dataset.itemIds[0], title: a.split.dataset.titles[0] });
  });

  it('leaves an existing split untouched when a run fails', async () => {
    const bad = fixture(root, 'bad.csv', 'user_id,item_id,timestamp\nu,i,1\nu,j,x\n');
    await assert.rejects(prepare({ source: { data: bad }, out: a.out }), { message: `${bad}:3: field "timestamp": not a number ("x")` });
    assert.ok(existsSync(join(a.out, 'manifest.json')));
    assert.equal(JSON.parse(readFileSync(join(a.out, 'manifest.json'), 'utf8')).hash, a.hash);
    assert.deepEqual(readdirSync(root).filter((n) => n.includes('.tmp-')), []);
  });
});
