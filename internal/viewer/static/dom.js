// Small DOM helpers shared by the views.

import { stringifyJSON } from './json.js';

/** h builds an element: h('a', {href: '#/', class: 'x', onclick: fn}, child...). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') { if (tag === 'input') el.setAttribute('value', String(v)); else el.value = v; } // an input's default value: a form reset restores it
    else if (k === 'checked') el.checked = !!v;
    else if (k === 'disabled') el.disabled = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** clear empties an element and fills it with children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** enc escapes a path segment. */
export const enc = encodeURIComponent;

/** fmtTime formats an RFC 3339 time for people (local time), or ''. */
export function fmtTime(s) {
  if (!s || s.startsWith('0001-01-01')) return '';
  const d = new Date(s);
  if (isNaN(d)) return s;
  const opts = { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
  if (d.getFullYear() !== new Date().getFullYear()) opts.year = 'numeric';
  return d.toLocaleString(undefined, opts);
}

/** ago says how long ago an RFC 3339 time was ("5 s ago"). */
export function ago(s) {
  if (!s || s.startsWith('0001-01-01')) return '';
  const ms = Date.now() - new Date(s).getTime();
  if (isNaN(ms)) return '';
  const a = Math.abs(ms) / 1000;
  const t = a < 60 ? `${Math.round(a)} s` : a < 3600 ? `${Math.round(a / 60)} min` : a < 86400 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  return ms >= 0 ? `${t} ago` : `in ${t}`;
}

/** keyStr formats a record key as ID/REV. */
export const keyStr = (k) => `${k.id}/${k.rev}`;

/** cell renders a value of any kind compactly for a table cell. */
export function cellText(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return v.length === 0 ? '[]' : `[${v.length}] ` + v.slice(0, 3).map(cellText).join(', ') + (v.length > 3 ? ', …' : '');
  const keys = Object.keys(v);
  if (keys.length === 2 && 'id' in v && 'rev' in v) return `${v.id}/${v.rev}`;
  const s = stringifyJSON(v);
  return s.length > 60 ? s.slice(0, 57) + '…' : s;
}

/** messageBox is a place for the outcome of an action: ok, error, info. */
export function messageBox(testid) {
  const el = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite', 'data-testid': testid || 'message', hidden: true });
  return {
    el,
    show(kind, text, detail) {
      el.hidden = false;
      el.className = `msg msg-${kind}`;
      el.dataset.kind = kind;
      fill(el, h('span', { class: 'msg-text' }, text), detail ? h('pre', { class: 'msg-detail' }, detail) : null,
        h('button', { class: 'msg-close link', type: 'button', 'aria-label': 'dismiss', onclick: () => { el.hidden = true; } }, '×'));
    },
    error(err) {
      if (err && err.code) this.show('error', `${err.code}: ${err.message}`);
      else if (err && err.problems) this.show('error', 'The value does not fit the schema:', err.problems.join('\n'));
      else this.show('error', String(err && err.message ? err.message : err));
    },
    clear() { el.hidden = true; },
  };
}

/** flash highlights an element briefly (a change that arrived live). */
export function flash(el) {
  el.classList.remove('flash');
  void el.offsetWidth; // restart the animation
  el.classList.add('flash');
}

/** badge is a small coloured label. */
export const badge = (kind, text, attrs) => h('span', { class: `badge badge-${kind}`, ...(attrs || {}) }, text);
