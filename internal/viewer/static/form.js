// The record form: an editor for each field of a schema definition,
// nested for structs, slices and maps, giving back a value in the JSON
// form the API uses (then checked by conform before it is written).

import { h } from './dom.js';
import { typeString, joinPath } from './schema.js';
import { parseJSON, stringifyJSON } from './json.js';

/** Problems collects what the form's inputs cannot be read as. */
class Problems {
  constructor() { this.list = []; }
  add(path, msg) { this.list.push(`${path || '(the record)'}: ${msg}`); }
}

/** buildForm returns {el, read()} for a record value of definition def.
 * read() returns the value or throws {problems}. opts.readOnly disables
 * every input; opts.keyLink(ref, key) returns a href for a key or null. */
export function buildForm(def, value, opts = {}) {
  const ed = editor(def, { kind: 'struct', ref: def.root }, value, '', opts, true);
  return {
    el: h('div', { class: 'form', 'data-testid': 'record-form' }, ed.el),
    read() {
      const p = new Problems();
      const v = ed.get(p);
      if (p.list.length) throw { problems: p.list };
      return v === undefined ? {} : v;
    },
  };
}

const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);

function input(path, value, opts, attrs) {
  return h('input', { type: 'text', class: 'in', value: value ?? '', disabled: opts.readOnly, 'data-testid': `field-${path}`, 'aria-label': path || 'value', ...(attrs || {}) });
}

function editor(def, t, value, path, opts, top) {
  const base = baseEditor(def, t, value, path, opts, top);
  if (!t.null || top) return base;
  // A pointer: may be null.
  const isNull = value === null || value === undefined;
  const box = h('input', { type: 'checkbox', checked: isNull, disabled: opts.readOnly, 'data-testid': `null-${path}` });
  const wrap = h('div', { class: 'nullable' }, h('label', { class: 'null-toggle' }, box, ' null'), base.el);
  const sync = () => { base.el.hidden = box.checked; };
  box.addEventListener('change', sync);
  sync();
  return { el: wrap, get: (p) => (box.checked ? null : base.get(p)) };
}

function baseEditor(def, t, value, path, opts, top) {
  switch (t.kind) {
    case 'bool': {
      const el = h('input', { type: 'checkbox', checked: value === true, disabled: opts.readOnly, 'data-testid': `field-${path}` });
      return { el: h('label', { class: 'check' }, el), get: () => el.checked };
    }
    case 'int': case 'uint': {
      const el = input(path, value === undefined || value === null ? '' : String(value), opts, { inputmode: 'numeric', placeholder: '0', class: 'in in-num' });
      return {
        el,
        get(p) {
          const s = el.value.trim();
          if (s === '') return undefined;
          if (!/^[+-]?\d+$/.test(s)) { p.add(path, `${JSON.stringify(s)} is not a whole number`); return undefined; }
          const n = BigInt(s);
          return Number.isSafeInteger(Number(n)) ? Number(n) : n;
        },
      };
    }
    case 'float': {
      const el = input(path, value === undefined || value === null ? '' : String(value), opts, { inputmode: 'decimal', placeholder: '0', class: 'in in-num' });
      return {
        el,
        get(p) {
          const s = el.value.trim();
          if (s === '') return undefined;
          const n = Number(s);
          if (!Number.isFinite(n) || !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) { p.add(path, `${JSON.stringify(s)} is not a number`); return undefined; }
          return n;
        },
      };
    }
    case 'string': {
      const long = typeof value === 'string' && (value.includes('\n') || value.length > 80);
      const el = long
        ? h('textarea', { class: 'in', rows: 4, disabled: opts.readOnly, 'data-testid': `field-${path}`, 'aria-label': path }, value)
        : input(path, value ?? '', opts);
      return { el, get: () => el.value };
    }
    case 'time': {
      const el = input(path, value ?? '', opts, { placeholder: '2026-11-24T12:00:00Z' });
      return { el, get: () => (el.value.trim() === '' ? undefined : el.value.trim()) };
    }
    case 'bytes': {
      const el = h('textarea', { class: 'in mono', rows: 2, disabled: opts.readOnly, placeholder: 'base64', 'data-testid': `field-${path}`, 'aria-label': path }, value ?? '');
      return { el, get: () => (el.value.trim() === '' ? null : el.value.trim()) };
    }
    case 'key': {
      const k = isObj(value) && value.id ? `${value.id}${value.rev ? '/' + value.rev : ''}` : '';
      const el = input(path, k, opts, { placeholder: 'ID/REV', class: 'in in-key' });
      const href = k && opts.keyLink ? opts.keyLink(t.ref, value) : null;
      const link = href ? h('a', { href, class: 'keylink', 'data-testid': `link-${path}` }, `open ${t.ref} ${k}`) : null;
      return {
        el: h('span', { class: 'key-editor' }, el, link),
        get(p) {
          const s = el.value.trim();
          if (s === '') return undefined;
          const m = /^(\d+)(?:\/(\d+))?$/.exec(s);
          if (!m) { p.add(path, `${JSON.stringify(s)} is not a key ID/REV`); return undefined; }
          const num = (x) => (Number.isSafeInteger(Number(x)) ? Number(x) : BigInt(x));
          return m[2] ? { id: num(m[1]), rev: num(m[2]) } : { id: num(m[1]) };
        },
      };
    }
    case 'struct': return structEditor(def, t, value, path, opts, top);
    case 'slice': return listEditor(def, t, value, path, opts);
    case 'map': return mapEditor(def, t, value, path, opts);
    default: { // any, custom: JSON text
      const el = h('textarea', { class: 'in mono', rows: 3, disabled: opts.readOnly, 'data-testid': `field-${path}`, 'aria-label': path },
        value === undefined ? '' : stringifyJSON(value, 2));
      return {
        el,
        get(p) {
          const s = el.value.trim();
          if (s === '') return undefined;
          try { return parseJSON(s); } catch (err) { p.add(path, `not JSON: ${err.message}`); return undefined; }
        },
      };
    }
  }
}

function structEditor(def, t, value, path, opts, top) {
  const st = (def.types || {})[t.ref];
  if (!st) return { el: h('span', { class: 'muted' }, `unknown struct ${t.ref}`), get: () => value };
  const v = isObj(value) ? value : {};
  const rows = (st.fields || []).map((f) => {
    const p = joinPath(path, f.name);
    const ed = editor(def, f.type, v[f.name], p, opts, false);
    const nested = ['struct', 'slice', 'map'].includes(f.type.kind);
    return {
      f, ed,
      el: h('div', { class: nested ? 'row row-nested' : 'row', 'data-field': p },
        h('label', { class: 'lbl', title: f.go ? `Go: ${f.go}` : '' }, h('span', { class: 'fname' }, f.name), h('span', { class: 'ftype' }, typeString(def, f.type))),
        h('div', { class: 'ed' }, ed.el)),
    };
  });
  // Keys of the value the definition does not list stay as they are (and
  // conform then names them).
  const extra = Object.keys(v).filter((k) => !(st.fields || []).some((f) => f.name === k));
  return {
    el: h('div', { class: top ? 'struct struct-top' : 'struct' }, rows.map((r) => r.el),
      extra.length ? h('p', { class: 'muted small' }, `fields not in the schema: ${extra.join(', ')}`) : null),
    get(p) {
      const out = {};
      for (const k of extra) out[k] = v[k];
      for (const r of rows) {
        const x = r.ed.get(p);
        if (x !== undefined) out[r.f.name] = x;
      }
      return out;
    },
  };
}

function zero(t) {
  switch (t.kind) {
    case 'struct': return {};
    case 'slice': return [];
    case 'map': return {};
    default: return undefined;
  }
}

function listEditor(def, t, value, path, opts) {
  const items = [];
  const list = h('ol', { class: 'list', start: 0, 'data-testid': `list-${path}` });
  const add = (v) => {
    const item = { ed: editor(def, t.elem, v, `${path}[${items.length}]`, opts, false), li: null };
    const rm = opts.readOnly ? null : h('button', { type: 'button', class: 'link small', title: 'remove', onclick: () => { items.splice(items.indexOf(item), 1); item.li.remove(); } }, 'remove');
    item.li = h('li', { class: 'item' }, h('div', { class: 'ed' }, item.ed.el), rm);
    items.push(item);
    list.append(item.li);
  };
  for (const v of Array.isArray(value) ? value : []) add(v);
  const addBtn = opts.readOnly ? null : h('button', { type: 'button', class: 'btn small', 'data-testid': `add-${path}`, onclick: () => add(zero(t.elem)) }, '+ element');
  return {
    el: h('div', { class: 'coll' }, list, addBtn, items.length || !opts.readOnly ? null : h('span', { class: 'muted small' }, 'empty')),
    get(p) {
      if (value === null && items.length === 0) return null;
      return items.map((it) => {
        const x = it.ed.get(p);
        return x === undefined ? zeroValue(t.elem) : x;
      });
    },
  };
}

// zeroValue: an element left empty in a list is the zero value of its
// type (a list cannot leave an element out).
function zeroValue(t) {
  switch (t.kind) {
    case 'bool': return false;
    case 'int': case 'uint': case 'float': return 0;
    case 'string': return '';
    case 'struct': return {};
    case 'time': return '0001-01-01T00:00:00Z';
    case 'key': return { id: 0, rev: 0 };
    default: return null;
  }
}

function mapEditor(def, t, value, path, opts) {
  const entries = [];
  const table = h('div', { class: 'map', 'data-testid': `map-${path}` });
  const add = (k, v) => {
    const e = {};
    e.key = h('input', { type: 'text', class: 'in in-mapkey', value: k, placeholder: 'key', disabled: opts.readOnly, 'data-testid': `mapkey-${path}{${k}}` });
    e.ed = editor(def, t.elem, v, `${path}{${k}}`, opts, false);
    const rm = opts.readOnly ? null : h('button', { type: 'button', class: 'link small', onclick: () => { entries.splice(entries.indexOf(e), 1); e.row.remove(); } }, 'remove');
    e.row = h('div', { class: 'map-row' }, e.key, h('span', { class: 'arrow' }, '→'), h('div', { class: 'ed' }, e.ed.el), rm);
    entries.push(e);
    table.append(e.row);
  };
  if (isObj(value)) for (const k of Object.keys(value).sort()) add(k, value[k]);
  const addBtn = opts.readOnly ? null : h('button', { type: 'button', class: 'btn small', 'data-testid': `add-${path}`, onclick: () => add('', zero(t.elem)) }, '+ entry');
  return {
    el: h('div', { class: 'coll' }, table, addBtn, entries.length || !opts.readOnly ? null : h('span', { class: 'muted small' }, 'empty')),
    get(p) {
      if (value === null && entries.length === 0) return null;
      const out = {};
      for (const e of entries) {
        const k = e.key.value;
        if (k in out) p.add(`${path}{${k}}`, 'the key is there twice');
        const x = e.ed.get(p);
        out[k] = x === undefined ? zeroValue(t.elem) : x;
      }
      return out;
    },
  };
}

