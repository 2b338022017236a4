/**
 * A parser for the Python literals found in the 2014 Amazon metadata dumps, where each line is
 * `repr()` of a dict: single- or double-quoted strings with Python escapes, numbers, True/False/None,
 * lists, tuples and nested dicts. It is not `eval`: anything else is a syntax error with its column.
 */
export type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

export class PyLiteralError extends Error {
  constructor(message: string, readonly column: number) {
    super(`${message} at column ${column}`);
  }
}

export function parsePythonLiteral(src: string): PyValue {
  let i = 0;
  const n = src.length;

  const fail = (msg: string): never => {
    throw new PyLiteralError(msg, i + 1);
  };
  const ws = () => {
    while (i < n) {
      const c = src.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else break;
    }
  };

  function str(): string {
    // Optional prefixes u, b, r (any case, r may combine with the others).
    let raw = false;
    while (i < n && /[uUbBrR]/.test(src[i]) && src[i + 1] !== undefined && /['"uUbBrR]/.test(src[i + 1])) {
      if (src[i] === 'r' || src[i] === 'R') raw = true;
      i++;
    }
    const q = src[i];
    if (q !== "'" && q !== '"') fail('expected a string');
    i++;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= n) fail('unterminated string');
      const c = src[i];
      if (c === q) {
        out += src.slice(start, i);
        i++;
        return out;
      }
      if (c === '\\') {
        out += src.slice(start, i);
        const e = src[i + 1];
        if (raw) {
          out += '\\' + (e ?? '');
          i += 2;
        } else {
          i += 2;
          switch (e) {
            case 'n': out += '\n'; break;
            case 't': out += '\t'; break;
            case 'r': out += '\r'; break;
            case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
              let j = i - 1;
              let oct = '';
              while (j < n && oct.length < 3 && src[j] >= '0' && src[j] <= '7') oct += src[j++];
              out += String.fromCharCode(parseInt(oct, 8));
              i = j;
              break;
            }
            case 'x': out += String.fromCharCode(hex(2)); break;
            case 'u': out += String.fromCharCode(hex(4)); break;
            case 'U': out += String.fromCodePoint(hex(8)); break;
            case 'a': out += '\x07'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'v': out += '\v'; break;
            case '\n': break;
            case '\\': case "'": case '"': out += e; break;
            default: out += '\\' + (e ?? '');
          }
        }
        start = i;
        continue;
      }
      i++;
    }
  }

  function hex(len: number): number {
    const h = src.slice(i, i + len);
    if (h.length !== len || !/^[0-9a-fA-F]+$/.test(h)) fail('bad escape');
    i += len;
    return parseInt(h, 16);
  }

  function num(): number {
    const m = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/.exec(src.slice(i, i + 40));
    if (!m) fail('expected a value');
    i += m![0].length;
    return Number(m![0]);
  }

  function seq(close: string): PyValue[] {
    const out: PyValue[] = [];
    ws();
    if (src[i] === close) {
      i++;
      return out;
    }
    for (;;) {
      out.push(value());
      ws();
      if (src[i] === ',') {
        i++;
        ws();
        if (src[i] === close) {
          i++;
          return out;
        }
        continue;
      }
      if (src[i] === close) {
        i++;
        return out;
      }
      fail(`expected "," or "${close}"`);
    }
  }

  function dict(): { [k: string]: PyValue } {
    const out: { [k: string]: PyValue } = {};
    ws();
    if (src[i] === '}') {
      i++;
      return out;
    }
    for (;;) {
      ws();
      const k = value();
      if (typeof k !== 'string' && typeof k !== 'number') fail('dict keys must be strings or numbers');
      ws();
      if (src[i] !== ':') fail('expected ":"');
      i++;
      out[String(k)] = value();
      ws();
      if (src[i] === ',') {
        i++;
        ws();
        if (src[i] === '}') {
          i++;
          return out;
        }
        continue;
      }
      if (src[i] === '}') {
        i++;
        return out;
      }
      fail('expected "," or "}"');
    }
  }

  function value(): PyValue {
    ws();
    const c = src[i];
    if (c === '{') {
      i++;
      return dict();
    }
    if (c === '[') {
      i++;
      return seq(']');
    }
    if (c === '(') {
      i++;
      return seq(')');
    }
    if (c === "'" || c === '"') return str();
    if (src.startsWith('True', i)) {
      i += 4;
      return true;
    }
    if (src.startsWith('False', i)) {
      i += 5;
      return false;
    }
    if (src.startsWith('None', i)) {
      i += 4;
      return null;
    }
    if (/[uUbBrR]/.test(c ?? '') && /['"]/.test(src[i + 1] ?? src[i + 2] ?? '')) return str();
    return num();
  }

  const v = value();
  ws();
  if (i < n) fail('unexpected trailing text');
  return v;
}
