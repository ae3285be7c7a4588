// Schema definitions (internal/schema) as GET /v1/trees/{tree}/schemas
// answers them, and conform: the JavaScript twin of Definition.Conform,
// which checks a record value (as JSON gives it) against a definition and
// turns it into what the node's encoder would store (times under tag 0,
// bytes as byte strings, integer-keyed maps with integer keys). The error
// messages name the path as kvctl's do.

import { CborTime } from './cbor.js';

/** latest returns the schema of the newest version, or null. */
export function latest(schemas) {
  let best = null;
  for (const s of schemas || []) if (!best || s.version > best.version) best = s;
  return best;
}

/** byVersion returns the schema of version v, or null. */
export function byVersion(schemas, v) {
  return (schemas || []).find((s) => s.version === v) || null;
}

/** rootFields lists the fields of a definition's root struct. */
export function rootFields(def) {
  if (!def || !def.types) return [];
  const st = def.types[def.root];
  return st ? st.fields || [] : [];
}

/** typeString spells a type as kvctl and the node's messages do. */
export function typeString(def, t) {
  if (!t) return '?';
  let s;
  switch (t.kind) {
    case 'int': case 'uint': s = t.kind + (t.bits || 64); break;
    case 'float': s = 'float' + (t.bits || 64); break;
    case 'slice': s = '[]' + typeString(def, t.elem); break;
    case 'map': s = 'map[' + typeString(def, t.key) + ']' + typeString(def, t.elem); break;
    case 'struct': s = t.ref && !t.ref.startsWith('#') ? 'struct ' + unqualify(t.ref) : 'struct'; break;
    case 'key': s = 'key of ' + (t.ref || '?'); break;
    case 'custom': s = 'custom ' + (t.ref || ''); break;
    default: s = t.kind;
  }
  return t.null ? '*' + s : s;
}

function unqualify(name) {
  return name.replace(/[^\[\],*(){} ;]+/g, (tok) => {
    const i = tok.lastIndexOf('.');
    return i >= 0 ? tok.slice(i + 1) : tok;
  });
}

/** joinPath adds a field key to a path, quoting keys that need it. */
export function joinPath(path, key) {
  const k = key === '' || /[.\[\]{}"]/.test(key) ? JSON.stringify(key) : key;
  return path ? path + '.' + k : k;
}

/** ValueError lists the problems of a value, by path. */
export class ValueError extends Error {
  constructor(problems) {
    super(problems.join('\n'));
    this.problems = problems;
  }
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** canonicalTime checks an RFC 3339 time and returns it as Go's RFC3339Nano
 * format writes it, null for Go's zero time (stored as null), or undefined
 * when the text is not such a time. */
export function canonicalTime(s) {
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const [, Y, Mo, D, h, mi, sec, frac, zone] = m;
  const mon = +Mo, day = +D;
  const dim = new Date(Date.UTC(+Y, mon, 0)).getUTCDate();
  if (mon < 1 || mon > 12 || day < 1 || day > dim || +h > 23 || +mi > 59 || +sec > 59) return undefined;
  let z = zone;
  if (z !== 'Z') {
    const oh = +z.slice(1, 3), om = +z.slice(4, 6);
    if (oh > 23 || om > 59) return undefined;
    if (oh === 0 && om === 0) z = 'Z';
  }
  const f = (frac || '').replace(/0+$/, '');
  const text = `${Y}-${Mo}-${D}T${h}:${mi}:${sec}${f ? '.' + f : ''}${z}`;
  if (text === '0001-01-01T00:00:00Z') return null;
  return text;
}

/** conform checks v against def (the node's rules) and returns the value
 * to encode; it throws a ValueError naming every problem (at most 20). */
export function conform(def, v) {
  const problems = [];
  const fail = (path, msg) => {
    if (problems.length < 20) problems.push(`${path || '(the record)'}: ${msg}`);
    return null;
  };
  const kindOf = (x) => {
    if (x === null || x === undefined) return 'null';
    if (typeof x === 'boolean') return 'a bool';
    if (typeof x === 'string') return 'a string';
    if (typeof x === 'number' || typeof x === 'bigint') return 'a number';
    if (Array.isArray(x)) return 'an array';
    return 'an object';
  };
  const integer = (t, x, path) => {
    const bits = t.bits > 0 && t.bits <= 64 ? t.bits : 64;
    let n;
    if (typeof x === 'bigint') n = x;
    else if (typeof x === 'number') {
      if (!Number.isInteger(x)) return fail(path, `${x} is not a whole number, want ${t.kind}${bits}`);
      n = BigInt(x);
    } else return fail(path, `${kindOf(x)}, want ${t.kind}${bits}`);
    const B = BigInt(bits);
    if (t.kind === 'uint') {
      if (n < 0n) return fail(path, `${n} is negative, want a uint${bits}`);
      if (n >= 1n << B) return fail(path, `${n} is out of the range of uint${bits}`);
    } else if (n < -(1n << (B - 1n)) || n >= 1n << (B - 1n)) {
      return fail(path, `${n} is out of the range of int${bits}`);
    }
    return Number.isSafeInteger(Number(n)) ? Number(n) : n;
  };
  const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);
  const value = (t, x, path) => {
    if (x === null || x === undefined) {
      if (t.null || ['slice', 'map', 'bytes', 'any', 'custom'].includes(t.kind)) return null;
      return fail(path, `null, want ${typeString(def, t)}`);
    }
    switch (t.kind) {
      case 'any': case 'custom': return x;
      case 'bool': return typeof x === 'boolean' ? x : fail(path, `${kindOf(x)}, want a bool`);
      case 'string': return typeof x === 'string' ? x : fail(path, `${kindOf(x)}, want a string`);
      case 'int': case 'uint': return integer(t, x, path);
      case 'float':
        if (typeof x === 'bigint') return x;
        if (typeof x !== 'number') return fail(path, `${kindOf(x)}, want a number`);
        if (t.bits === 32 && Math.abs(x) > 3.4028234663852886e38) return fail(path, `${x} is out of the range of float32`);
        return x;
      case 'time': {
        if (typeof x !== 'string') return fail(path, `${kindOf(x)}, want a time as an RFC 3339 string`);
        const c = canonicalTime(x);
        if (c === undefined) return fail(path, `${JSON.stringify(x)} is not an RFC 3339 time such as 2026-11-24T12:00:00Z`);
        return c === null ? null : new CborTime(c);
      }
      case 'bytes': {
        if (typeof x !== 'string') return fail(path, `${kindOf(x)}, want bytes as a base64 string`);
        try {
          if (!/^[A-Za-z0-9+/]*={0,2}$/.test(x) || x.length % 4 !== 0) throw new Error('bad');
          return Uint8Array.from(atob(x), (c) => c.charCodeAt(0));
        } catch { return fail(path, 'not base64'); }
      }
      case 'key': {
        if (!isObj(x)) return fail(path, `${kindOf(x)}, want a key {"id": N, "rev": N}`);
        const out = {};
        for (const k of Object.keys(x)) if (k !== 'id' && k !== 'rev') fail(joinPath(path, k), 'a key has only id and rev');
        if ('id' in x) out.id = integer({ kind: 'uint', bits: 64 }, x.id, joinPath(path, 'id'));
        if ('rev' in x) out.rev = integer({ kind: 'uint', bits: 32 }, x.rev, joinPath(path, 'rev'));
        return out;
      }
      case 'slice':
        if (!Array.isArray(x)) return fail(path, `${kindOf(x)}, want an array`);
        return x.map((e, i) => value(t.elem, e, `${path}[${i}]`));
      case 'map': {
        if (!isObj(x)) return fail(path, `${kindOf(x)}, want an object`);
        const kt = t.key || { kind: 'string' };
        const keys = Object.keys(x).sort();
        if (kt.kind === 'int' || kt.kind === 'uint') {
          const out = new Map();
          const bits = kt.bits > 0 && kt.bits <= 64 ? kt.bits : 64;
          for (const k of keys) {
            const p = `${path}{${k}}`;
            if (!/^[+-]?\d+$/.test(k)) { fail(p, `key ${JSON.stringify(k)} is not a${kt.kind === 'int' ? 'n int' : ' uint'}${bits}`); continue; }
            const n = BigInt(k);
            const B = BigInt(bits);
            const ok = kt.kind === 'uint' ? n >= 0n && n < 1n << B : n >= -(1n << (B - 1n)) && n < 1n << (B - 1n);
            if (!ok) { fail(p, `key ${JSON.stringify(k)} is not a${kt.kind === 'int' ? 'n int' : ' uint'}${bits}`); continue; }
            out.set(Number.isSafeInteger(Number(n)) ? Number(n) : n, value(t.elem, x[k], p));
          }
          return out;
        }
        if (kt.kind === 'string' || kt.kind === 'any') {
          const out = {};
          for (const k of keys) out[k] = value(t.elem, x[k], `${path}{${k}}`);
          return out;
        }
        return fail(path, `maps keyed by ${typeString(def, kt)} cannot be written from JSON`);
      }
      case 'struct': {
        if (!isObj(x)) return fail(path, `${kindOf(x)}, want an object`);
        const st = def.types[t.ref];
        if (!st) return fail(path, `the schema has no struct ${JSON.stringify(t.ref)}`);
        const out = {};
        for (const k of Object.keys(x).sort()) {
          const f = (st.fields || []).find((ff) => ff.name === k);
          if (!f) { fail(joinPath(path, k), 'no such field in the schema'); continue; }
          out[k] = value(f.type, x[k], joinPath(path, k));
        }
        return out;
      }
    }
    return fail(path, `unknown kind ${JSON.stringify(t.kind)} in the schema`);
  };
  const out = value({ kind: 'struct', ref: def.root }, v, '');
  if (problems.length) throw new ValueError(problems);
  return out;
}
