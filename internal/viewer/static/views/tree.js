// A tree's records: a paged, sortable table whose columns are the fields
// of the newest schema version, a search by field value, and live
// updates from the tree's events.

import { get, query, follow, recPath, clientNames } from '../api.js';
import { h, fill, cellText, messageBox, flash, badge, keyStr, fmtTime } from '../dom.js';
import { latest, rootFields, typeString } from '../schema.js';
import { keyLinker, borrowBadge } from './common.js';

const SORTABLE = new Set(['bool', 'int', 'uint', 'float', 'string', 'time', 'key']);
const OPS = [['eq', '='], ['prefix', 'starts with'], ['contains', 'contains'], ['lt', '<'], ['gt', '>']];

export function mount(view, session, treeName, params) {
  const limit = Math.min(Math.max(parseInt(params.get('limit') || '50', 10) || 50, 1), 1000);
  const st = {
    sort: params.get('sort') || '', desc: params.get('desc') === '1',
    field: params.get('field') || '', op: params.get('op') || 'eq', value: params.get('value') || '',
    offset: Math.max(parseInt(params.get('offset') || '0', 10) || 0, 0), after: params.get('after') || '',
    prev: params.get('prev') || '', // cursors of the pages before, comma separated
  };
  const msg = messageBox();
  const note = h('p', { class: 'note', hidden: true, 'data-testid': 'table-note' });
  const table = h('div', { class: 'table-wrap' }, h('p', { class: 'muted' }, 'Loading…'));
  const pager = h('div', { class: 'pager', 'data-testid': 'pager' });
  const searchForm = h('form', { class: 'search', 'data-testid': 'search' });
  const title = h('div', { class: 'head' },
    h('h1', {}, h('a', { href: '#/', class: 'crumb' }, 'Trees'), ' / ', h('span', { 'data-testid': 'tree-name' }, treeName)),
    h('span', { class: 'muted', 'data-testid': 'tree-summary' }));
  fill(view, title, searchForm, msg.el, note, table, pager);

  let columns = [];
  let def = null;
  let rows = new Map(); // "id/rev" -> <tr>
  let borrows = new Map(); // "id/rev" -> borrow
  let names = new Map();
  let keyLink = () => null;
  let searchRoute = true;
  let lastPage = null; // the page shown: {records, after, total}

  const go = (changes) => {
    const next = { ...st, ...changes };
    const u = new URLSearchParams();
    for (const k of ['sort', 'field', 'op', 'value', 'after', 'prev']) if (next[k]) u.set(k, next[k]);
    if (next.desc) u.set('desc', '1');
    if (next.offset) u.set('offset', String(next.offset));
    if (limit !== 50) u.set('limit', String(limit));
    if (!next.value) { u.delete('field'); u.delete('op'); } else if (next.field === '') u.set('field', '');
    const s = u.toString();
    location.hash = `#/trees/${encodeURIComponent(treeName)}${s ? '?' + s : ''}`;
  };
  const searching = () => !!(st.sort || st.value);

  function renderSearch() {
    const fieldSel = h('select', { name: 'field', 'data-testid': 'search-field', 'aria-label': 'field' },
      h('option', { value: '', selected: st.field === '' && !!st.value }, 'any field'),
      h('option', { value: 'id', selected: st.field === 'id' }, 'id'),
      columns.filter((c) => c.type.kind !== 'bytes').map((c) => h('option', { value: c.name, selected: c.name === st.field }, c.name)));
    if (!st.value && columns.length) fieldSel.value = columns[0].name;
    const opSel = h('select', { name: 'op', 'data-testid': 'search-op', 'aria-label': 'operator' }, OPS.map(([v, l]) => h('option', { value: v, selected: v === st.op }, l)));
    const val = h('input', { type: 'search', name: 'value', class: 'in', value: st.value, placeholder: 'value', 'data-testid': 'search-value', 'aria-label': 'value' });
    fill(searchForm, fieldSel, opSel, val,
      h('button', { type: 'submit', class: 'btn', 'data-testid': 'search-go' }, 'Search'),
      st.value || st.sort ? h('button', { type: 'button', class: 'link', 'data-testid': 'search-clear', onclick: () => go({ field: '', value: '', sort: '', desc: false, offset: 0, after: '', prev: '' }) }, 'clear') : null);
    searchForm.onsubmit = (e) => {
      e.preventDefault();
      go({ field: fieldSel.value, op: opSel.value, value: val.value.trim(), offset: 0, after: '', prev: '' });
    };
  }

  function headerCell(label, sortKey, extraClass, testid) {
    if (!sortKey) return h('th', { class: extraClass || '', 'data-testid': testid }, label);
    const active = st.sort === sortKey;
    return h('th', { class: `sortable ${active ? 'sorted' : ''} ${extraClass || ''}`, 'data-testid': `col-${sortKey}`, 'aria-sort': active ? (st.desc ? 'descending' : 'ascending') : 'none' },
      h('button', { type: 'button', class: 'th-btn', onclick: () => go({ sort: sortKey, desc: active ? !st.desc : false, offset: 0, after: '', prev: '' }) },
        label, h('span', { class: 'arrow' }, active ? (st.desc ? ' ▼' : ' ▲') : '')));
  }

  function rowFor(r) {
    const k = keyStr(r.key);
    const v = r.value && typeof r.value === 'object' ? r.value : {};
    const b = borrows.get(k) || r.borrow;
    const href = `#/trees/${encodeURIComponent(treeName)}/records/${r.key.id}/${r.key.rev}`;
    const tr = h('tr', { 'data-testid': `row-${r.key.id}-${r.key.rev}`, 'data-key': k, class: b ? 'is-borrowed' : '' },
      h('td', { class: 'key' }, h('a', { href, 'data-testid': `open-${r.key.id}-${r.key.rev}` }, k)),
      h('td', { 'data-col': '_status', class: 'status' }, r.released ? badge('released', 'released') : badge('draft', 'draft'), ' ', borrowBadge(b, names, session.me(), r.key)),
      h('td', { class: 'num', 'data-col': '_state' }, String(r.state)),
      columns.map((c) => {
        const x = v[c.name];
        let content = c.type.kind === 'time' && typeof x === 'string' ? fmtTime(x) : cellText(x);
        if (c.type.kind === 'key' && x && x.id) {
          const l = keyLink(c.type.ref, x);
          if (l) content = h('a', { href: l }, content);
        }
        return h('td', { 'data-col': c.name, class: ['int', 'uint', 'float'].includes(c.type.kind) ? 'num' : '', title: typeof x === 'string' && (x.length > 30 || c.type.kind === 'time') ? x : null }, content);
      }),
      def ? null : h('td', { class: 'mono small' }, r.value_error ? h('span', { class: 'err' }, r.value_error) : cellText(v)));
    tr.addEventListener('click', (e) => { if (!e.target.closest('a,button')) location.hash = href; });
    return tr;
  }

  function renderTable(page) {
    lastPage = page;
    rows = new Map();
    const head = h('tr', {},
      headerCell('id/rev', '', 'key'), h('th', {}, 'status'), h('th', { class: 'num' }, 'state'),
      columns.map((c) => headerCell(h('span', { title: typeString(def, c.type) }, c.name), SORTABLE.has(c.type.kind) ? c.name : '', '', `col-${c.name}`)),
      def ? null : h('th', {}, 'value'));
    const tbody = h('tbody', { 'data-testid': 'rows' });
    for (const r of page.records) {
      const tr = rowFor(r);
      rows.set(keyStr(r.key), tr);
      tbody.append(tr);
    }
    fill(table, h('table', { class: 'grid records', 'data-testid': 'records-table' }, h('thead', {}, head), tbody),
      page.records.length ? null : h('p', { class: 'empty', 'data-testid': 'no-records' }, searching() ? 'No record matches.' : 'No records.'));
    renderPager(page);
  }

  function renderPager(page) {
    const items = [];
    if (searching() && searchRoute) {
      const from = page.records.length ? st.offset + 1 : 0;
      items.push(h('span', { class: 'muted' }, `${from}–${st.offset + page.records.length} of ${page.total}${page.truncated ? '+ (scan limit reached: narrow the search)' : ''}`));
      items.push(h('button', { class: 'btn small', type: 'button', disabled: st.offset === 0, 'data-testid': 'page-prev', onclick: () => go({ offset: Math.max(st.offset - limit, 0) }) }, '← Previous'));
      items.push(h('button', { class: 'btn small', type: 'button', disabled: st.offset + page.records.length >= page.total, 'data-testid': 'page-next', onclick: () => go({ offset: st.offset + limit }) }, 'Next →'));
    } else {
      const prevs = st.prev ? st.prev.split(',') : [];
      items.push(h('span', { class: 'muted' }, `page ${prevs.length + 1} · ${page.records.length} records`));
      items.push(h('button', { class: 'btn small', type: 'button', disabled: !st.after, 'data-testid': 'page-prev', onclick: () => {
        const p = prevs.slice(0, -1);
        go({ after: prevs.length ? prevs[prevs.length - 1] === '-' ? '' : prevs[prevs.length - 1] : '', prev: p.join(',') });
      } }, '← Previous'));
      items.push(h('button', { class: 'btn small', type: 'button', disabled: !page.after, 'data-testid': 'page-next', onclick: () => go({ after: page.after, prev: [...prevs, st.after || '-'].join(',') }) }, 'Next →'));
    }
    fill(pager, items);
  }

  async function fetchPage() {
    if (searching() && searchRoute) {
      try {
        // Neither field nor value: no filter (a sort of the whole tree).
        const filter = st.value ? { field: st.field, op: st.op, value: st.value } : {};
        const p = await get(`/v1/trees/${encodeURIComponent(treeName)}/search${query({
          ...filter, sort: st.sort, desc: st.desc ? 1 : '', limit, offset: st.offset,
        })}`);
        return { records: p.records || [], total: p.total, truncated: p.truncated, scanned: p.scanned };
      } catch (err) {
        if (err.status !== 404 && err.status !== 405) throw err;
        searchRoute = false;
      }
    }
    const p = await get(`/v1/trees/${encodeURIComponent(treeName)}/records${query({ limit, after: st.after })}`);
    let recs = p.records || [];
    if (searching()) {
      note.hidden = false;
      note.textContent = 'This node has no search route: the search and sort apply to this page only.';
      if (st.value) recs = recs.filter((r) => matches(r.value && r.value[st.field], st.op, st.value));
      if (st.sort) recs.sort((a, b) => compare(a.value && a.value[st.sort], b.value && b.value[st.sort]) * (st.desc ? -1 : 1));
    }
    return { records: recs, after: p.after };
  }

  async function load() {
    try {
      const [schemas, bs, nm, kl] = await Promise.all([
        get(`/v1/trees/${encodeURIComponent(treeName)}/schemas`),
        get(`/v1/borrows${query({ tree: treeName })}`),
        clientNames(),
        keyLinker(),
      ]);
      const s = latest(schemas);
      def = s ? s.definition : null;
      columns = rootFields(def).map((f) => ({ name: f.name, type: f.type }));
      borrows = new Map((bs || []).map((b) => [keyStr(b.key), b]));
      names = nm;
      keyLink = kl;
      title.lastChild.textContent = s ? `schema v${s.version} · ${columns.length} fields` : 'no schema';
      renderSearch();
      renderTable(await fetchPage());
    } catch (err) {
      msg.error(err);
      if (err.code === 'tree_not_found') fill(table);
    }
  }

  // Live: fetch each changed record and update its row in place.
  async function onEvent(ev) {
    if (ev.type === 'schema') { load(); return; }
    if (ev.type === 'client') { names = await clientNames(true); return; }
    if (!ev.key || !ev.key.id) return;
    const k = keyStr(ev.key);
    let rec = null;
    try {
      rec = await get(recPath(treeName, ev.key));
    } catch (err) {
      if (err.code !== 'not_found') { msg.error(err); return; }
    }
    if (rec && rec.borrow) borrows.set(k, rec.borrow); else borrows.delete(k);
    if (rec && rec.borrow && !names.has(rec.borrow.client) && !rec.borrow.client_name) names = await clientNames(true);
    const old = rows.get(k);
    if (!rec) {
      if (old) { old.classList.add('gone'); old.dataset.gone = '1'; old.querySelector('[data-col="_status"]')?.replaceChildren(badge('gone', 'deleted')); }
      return;
    }
    if (old) {
      const tr = rowFor(rec);
      old.replaceWith(tr);
      rows.set(k, tr);
      flash(tr);
      return;
    }
    if (ev.type !== 'created' || !lastPage) return;
    // A new record: place it if it belongs on this page (key order).
    if (searching()) {
      note.hidden = false;
      fill(note, 'Records were added. ', h('a', { href: location.hash, onclick: (e) => { e.preventDefault(); note.hidden = true; load(); } }, 'Refresh'), ' to see them in the search.');
      return;
    }
    const tbody = table.querySelector('tbody');
    if (!tbody) { load(); return; }
    const keys = [...rows.keys()];
    const before = keys.find((x) => cmpKey(x, k) > 0);
    if (!before && lastPage.after) return; // beyond this page
    const tr = rowFor(rec);
    rows.set(k, tr);
    if (before) rows.get(before).before(tr); else tbody.append(tr);
    table.querySelector('[data-testid="no-records"]')?.remove();
    flash(tr);
  }

  load();
  const sub = follow(treeName, (ev) => { onEvent(ev); }, () => load());
  return () => sub.close();
}

function cmpKey(a, b) {
  const [ai, ar] = a.split('/').map(BigInt), [bi, br] = b.split('/').map(BigInt);
  return ai === bi ? (ar < br ? -1 : ar > br ? 1 : 0) : ai < bi ? -1 : 1;
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === undefined || a === null) return -1;
  if (b === undefined || b === null) return 1;
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) return a < b ? -1 : a > b ? 1 : 0;
  return String(cellText(a)).localeCompare(String(cellText(b)));
}

function matches(x, op, value) {
  if (x === undefined || x === null) return false;
  const s = cellText(x);
  switch (op) {
    case 'prefix': return s.startsWith(value);
    case 'contains': return s.includes(value);
    case 'lt': return (typeof x === 'number' ? x < Number(value) : s < value);
    case 'gt': return (typeof x === 'number' ? x > Number(value) : s > value);
    default: return s === value;
  }
}
