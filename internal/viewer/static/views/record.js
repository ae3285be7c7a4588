// One record: its value as a form typed by its schema and as JSON, its
// revisions, released state, state number, borrow and history; editing
// by check-out, edit, check-in (as kvctl edit does); live updates.

import { get, request, follow, recPath, clientNames } from '../api.js';
import { h, fill, fmtTime, ago, messageBox, flash, badge, keyStr } from '../dom.js';
import { latest, byVersion, conform } from '../schema.js';
import { encodeCBOR } from '../cbor.js';
import { parseJSON, stringifyJSON } from '../json.js';
import { buildForm } from '../form.js';
import { keyLinker, borrowBadge, section } from './common.js';

/** The borrow the viewer takes to edit: if the browser goes away the
 * borrow still ends by itself (kvctl edit takes the same). */
const EDIT_TTL = '1h';
/** The borrow taken for one step (release of a record not held). */
const STEP_TTL = '1m';

function idemKey() {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((x) => x.toString(16).padStart(2, '0')).join('');
}

export function mount(view, session, treeName, idStr, revStr) {
  if (!/^\d+$/.test(idStr) || (revStr && !/^\d+$/.test(revStr))) {
    fill(view, h('div', { class: 'msg msg-error', 'data-testid': 'message' }, `invalid record key ${idStr}${revStr ? '/' + revStr : ''}: want ID or ID/REV`));
    return () => {};
  }
  const msg = messageBox('record-message');
  const tpath = `#/trees/${encodeURIComponent(treeName)}`;
  const titleKey = h('span', { 'data-testid': 'record-key' }, `${idStr}${revStr ? '/' + revStr : ''}`);
  const badges = h('span', { class: 'badges', 'data-testid': 'record-badges' });
  const toolbar = h('div', { class: 'toolbar', 'data-testid': 'toolbar' });
  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const content = h('div', { class: 'content card', 'data-testid': 'record-content' });
  const aside = h('div', { class: 'aside' });
  const newer = h('p', { class: 'note', hidden: true, 'data-testid': 'record-newer' });
  fill(view,
    h('div', { class: 'head' }, h('h1', {}, h('a', { href: '#/', class: 'crumb' }, 'Trees'), ' / ', h('a', { href: tpath, class: 'crumb', 'data-testid': 'crumb-tree' }, treeName), ' / ', titleKey), badges),
    msg.el, newer, toolbar,
    h('div', { class: 'record-layout' }, h('div', { class: 'main-col' }, tabs, content), aside));

  let rec = null;
  let schemas = [];
  let def = null; // the definition of the record's schema version
  let version = 0;
  let names = new Map();
  let keyLink = () => null;
  let editing = false;
  let mode = 'form';
  let form = null; // {read()} of the form shown
  let jsonArea = null;
  let busy = false;
  let confirming = false; // the release button asks first
  let history = [];
  const me = () => session.me();

  const held = () => !!(rec && rec.borrow && me() && rec.borrow.client === me());

  // current returns the value as edited (form or JSON), or throws.
  function current() {
    if (mode === 'json' || !def) {
      let v;
      try { v = parseJSON(jsonArea.value); } catch (err) { throw { problems: [`(the record): not JSON: ${err.message}`] }; }
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw { problems: ['(the record): the value must be a JSON object (the record\'s fields)'] };
      return v;
    }
    return form.read();
  }

  function renderBadges() {
    const b = [];
    b.push(rec.released ? badge('released', 'released', { 'data-testid': 'record-released' }) : badge('draft', 'draft', { 'data-testid': 'record-released' }));
    b.push(badge('state', `state ${rec.state}`, { 'data-testid': 'record-state' }));
    b.push(badge('schema', rec.schema ? `schema v${rec.schema}` : 'no schema', { 'data-testid': 'record-schema' }));
    if (rec.borrow) b.push(borrowBadge(rec.borrow, names, me(), null));
    fill(badges, b);
  }

  function renderContent() {
    const readOnly = !editing;
    const value = rec.value && typeof rec.value === 'object' ? rec.value : {};
    const tabBtn = (m, label) => h('button', { type: 'button', role: 'tab', class: `tab ${mode === m ? 'active' : ''}`, 'aria-selected': mode === m ? 'true' : 'false', 'data-testid': `tab-${m}`, onclick: () => switchMode(m) }, label);
    fill(tabs, def ? tabBtn('form', 'Form') : null, tabBtn('json', 'JSON'),
      editing ? h('span', { class: 'editing-note', 'data-testid': 'editing' }, 'checked out to you: edit, then Save to check in') : null);
    if (rec.value_error) {
      fill(content, h('div', { class: 'msg msg-error' }, `This value has no JSON view: ${rec.value_error}`));
      form = null; jsonArea = null;
      return;
    }
    if (!def) mode = 'json';
    if (mode === 'form') {
      form = buildForm(def, value, { readOnly, keyLink });
      jsonArea = null;
      fill(content, h('form', { class: editing ? 'editing' : '', onsubmit: (e) => { e.preventDefault(); save(); } }, form.el));
    } else {
      form = null;
      const text = stringifyJSON(value, 2);
      jsonArea = h('textarea', { class: 'in mono json-edit', rows: Math.min(Math.max(text.split('\n').length + 1, 6), 30), 'data-testid': 'json-view', readonly: readOnly, spellcheck: 'false' }, text);
      fill(content, jsonArea);
    }
  }

  function switchMode(m) {
    if (m === mode) return;
    if (editing) {
      // Carry the edit over to the other view.
      let v;
      try { v = current(); } catch (err) { msg.error(err); return; }
      mode = m;
      const saved = rec.value;
      rec.value = v;
      renderContent();
      rec.value = saved;
      return;
    }
    mode = m;
    renderContent();
  }

  function button(id, label, onclick, cls) {
    return h('button', { type: 'button', class: `btn ${cls || ''}`, 'data-testid': `btn-${id}`, disabled: busy, onclick }, label);
  }

  function renderToolbar() {
    if (!session.canWrite) {
      fill(toolbar, h('span', { class: 'muted', 'data-testid': 'read-only' }, 'Read-only: your token has the reader role.'));
      return;
    }
    const items = [];
    if (editing) {
      items.push(button('save', 'Save and check in', save, 'primary'), button('return', 'Return (discard changes)', giveUp));
    } else if (!rec.released) {
      items.push(button('checkout', 'Check out to edit', checkout, 'primary'));
    }
    if (!rec.released) {
      items.push(confirming
        ? h('span', { class: 'group confirm' }, 'Release makes it immutable (but its state):',
          button('release-confirm', 'Release', release, 'danger'), button('release-cancel', 'Cancel', () => { confirming = false; renderToolbar(); }))
        : button('release', 'Release…', () => { confirming = true; renderToolbar(); }));
    }
    else items.push(button('revise', 'Revise (new draft)', revise));
    const stateIn = h('input', { type: 'number', class: 'in in-state', value: String(rec.state), 'data-testid': 'state-value', 'aria-label': 'state number', step: 1 });
    items.push(h('span', { class: 'group' }, stateIn, button('state', 'Set state', () => setState(stateIn.value))));
    fill(toolbar, items);
  }

  function renderAside() {
    const b = rec.borrow;
    const holder = b ? (b.client_name || names.get(b.client) || b.client) : '';
    const revs = [];
    const latestRev = rec.latest_rev || rec.key.rev;
    for (let r = latestRev; r >= 1 && revs.length < 20; r--) {
      revs.push(h('li', {}, r === rec.key.rev ? h('strong', {}, `${rec.key.id}/${r}`) : h('a', { href: `${tpath}/records/${rec.key.id}/${r}`, 'data-testid': `rev-${r}` }, `${rec.key.id}/${r}`)));
    }
    const dl = (pairs) => h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v, id]) => [h('dt', {}, k), h('dd', id ? { 'data-testid': id } : {}, v)]));
    fill(aside,
      section('Borrow', b
        ? dl([['holder', holder, 'borrow-holder'], ['client id', h('code', {}, b.client)], ['since', `${fmtTime(b.since)} (${ago(b.since)})`],
          ['expires', b.expires ? `${fmtTime(b.expires)} (${ago(b.expires)})` : 'never', 'borrow-expires']])
        : h('p', { class: 'muted', 'data-testid': 'borrow-holder' }, 'Not borrowed.')),
      section('Record', dl([
        ['key', `${rec.key.id}/${rec.key.rev}`], ['released', rec.released ? 'yes (immutable but its state)' : 'no (a draft)'], ['state', String(rec.state)],
        ['schema', rec.schema ? `v${rec.schema}` : 'none'], ['created', `${fmtTime(rec.created)}${rec.created_by ? ' by ' + (names.get(rec.created_by) || rec.created_by) : ''}`],
        ['updated', `${fmtTime(rec.updated)}${rec.updated_by ? ' by ' + (names.get(rec.updated_by) || rec.updated_by) : ''}`], ['log index', String(rec.index)],
      ])),
      section('Revisions', h('ul', { class: 'revs', 'data-testid': 'revisions' }, revs)),
      section('History', history.length ? h('table', { class: 'grid small', 'data-testid': 'history-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'when'), h('th', {}, 'what'), h('th', {}, 'who'), h('th', {}, 'note'))),
        h('tbody', {}, history.slice().reverse().map((a) => h('tr', {},
          h('td', { title: a.time }, fmtTime(a.time)), h('td', {}, a.action),
          h('td', {}, [a.client ? names.get(a.client) || a.client : '', a.holder && a.client ? ' ← ' : '', a.holder ? names.get(a.holder) || a.holder : ''].join('')),
          h('td', { class: 'muted' }, [a.reason, a.expires ? `until ${fmtTime(a.expires)}` : ''].filter(Boolean).join(' · '))))))
        : h('p', { class: 'muted', 'data-testid': 'history-empty' }, 'Never borrowed.')));
  }

  function render() {
    titleKey.textContent = keyStr(rec.key);
    renderBadges();
    renderToolbar();
    renderContent();
    renderAside();
  }

  async function fetchAll() {
    const r = await get(recPath(treeName, { id: idStr, rev: revStr ? Number(revStr) : 0 }));
    const [ss, hist, top, nm] = await Promise.all([
      get(`/v1/trees/${encodeURIComponent(treeName)}/schemas`),
      get(`${recPath(treeName, r.key)}/history`),
      revStr ? get(recPath(treeName, { id: idStr, rev: 0 })).catch(() => r) : r,
      clientNames(),
    ]);
    r.latest_rev = top.key.rev;
    history = hist || [];
    names = r.borrow && !r.borrow.client_name && !nm.has(r.borrow.client) ? await clientNames(true) : nm;
    schemas = ss || [];
    version = r.schema || (latest(schemas) || {}).version || 0;
    const s = byVersion(schemas, version);
    def = s ? s.definition : null;
    return r;
  }

  async function load(opts = {}) {
    try {
      const r = await fetchAll();
      const wasEditing = editing;
      rec = r;
      editing = held();
      if (wasEditing && !editing && !opts.quiet) {
        msg.show('error', 'Your check-out ended (returned by an operator, taken over or expired); your edit was not saved.', opts.unsaved);
      }
      if (opts.keepForm && wasEditing && editing) {
        renderBadges(); renderToolbar(); renderAside();
        return;
      }
      render();
      if (opts.flash) flash(content);
    } catch (err) {
      msg.error(err);
      if (!rec) fill(content, h('p', { class: 'muted' }, 'The record could not be read.'));
    }
  }

  // explain turns a refusal into a plain sentence where the API's code
  // allows (who holds it), then shows it.
  async function refused(err, what) {
    if (err && err.code === 'borrowed') {
      try {
        const r = await get(recPath(treeName, rec.key));
        if (r.borrow) {
          const n = r.borrow.client_name || (await clientNames(true)).get(r.borrow.client) || r.borrow.client;
          msg.show('error', `${what} refused: borrowed by ${n} since ${fmtTime(r.borrow.since)}.`, `${err.code}: ${err.message}`);
          return;
        }
      } catch { /* show the plain error */ }
    }
    if (err && err.code) msg.show('error', `${what} refused: ${err.code}: ${err.message}`);
    else if (err && err.problems) msg.show('error', `${what} refused: the value does not fit schema v${version} of ${treeName}:`, err.problems.join('\n'));
    else msg.show('error', `${what} failed: ${err && err.message ? err.message : err}`);
  }

  async function act(what, fn) {
    if (busy) return;
    busy = true;
    renderToolbar();
    try {
      await fn();
    } catch (err) {
      await refused(err, what);
    } finally {
      busy = false;
      if (rec) renderToolbar();
    }
  }

  const post = (action, body, key) => request('POST', `${recPath(treeName, rec.key)}/${action}`, { body, headers: { 'Idempotency-Key': key } });

  function checkout() {
    return act('Check out', async () => {
      const client = await session.client();
      await post('borrow', { client, ttl: EDIT_TTL }, `${idemKey()}.borrow`);
      msg.show('ok', `Checked out ${treeName} ${keyStr(rec.key)} (for at most ${EDIT_TTL}).`);
      await load({ quiet: true });
    });
  }

  function save() {
    return act('Save', async () => {
      const client = await session.client();
      let v = current();
      if (def) v = conform(def, v);
      const data = encodeCBOR(v);
      const body = { client, data };
      if (version) body.schema = version;
      const k = idemKey();
      const res = await request('PUT', recPath(treeName, rec.key), { cbor: encodeCBOR(body), headers: { 'Idempotency-Key': `${k}.update` } });
      try {
        await post('return', { client }, `${k}.return`);
      } catch (err) {
        if (err.code !== 'not_borrowed') throw err;
      }
      editing = false;
      msg.show('ok', `Saved ${treeName} ${keyStr(rec.key)} at index ${res.index} and checked it in.`);
      await load({ quiet: true });
    });
  }

  function giveUp() {
    return act('Return', async () => {
      const client = await session.client();
      try {
        await post('return', { client }, `${idemKey()}.return`);
      } catch (err) {
        if (err.code !== 'not_borrowed') throw err;
      }
      editing = false;
      msg.show('ok', `Returned ${treeName} ${keyStr(rec.key)} unchanged.`);
      await load({ quiet: true });
    });
  }

  function release() {
    confirming = false;
    return act('Release', async () => {
      const client = await session.client();
      const k = idemKey();
      const took = !held();
      if (took) await post('borrow', { client, ttl: STEP_TTL }, `${k}.borrow`);
      try {
        await post('release', { client }, `${k}.release`);
      } catch (err) {
        if (took) await post('return', { client }, `${k}.return`).catch(() => {});
        throw err;
      }
      editing = false;
      msg.show('ok', `Released ${treeName} ${keyStr(rec.key)}.`);
      await load({ quiet: true });
    });
  }

  function revise() {
    return act('Revise', async () => {
      const client = await session.client();
      const res = await post('revise', { client }, `${idemKey()}.revise`);
      msg.show('ok', `${treeName} ${keyStr(res.key)} is a new draft, checked out to you.`);
      location.hash = `${tpath}/records/${res.key.id}/${res.key.rev}`;
    });
  }

  function setState(text) {
    return act('Set state', async () => {
      if (!/^-?\d+$/.test(String(text).trim())) throw new Error(`${JSON.stringify(text)} is not a whole number`);
      const client = await session.client();
      const n = BigInt(String(text).trim());
      await post('state', { client, state: Number.isSafeInteger(Number(n)) ? Number(n) : n }, `${idemKey()}.state`);
      msg.show('ok', `State of ${treeName} ${keyStr(rec.key)} set to ${n}.`);
      await load({ quiet: true, keepForm: true });
    });
  }

  // Live: reload when this record (any revision of its id) changes.
  function onEvent(ev) {
    if (!rec || !ev.key || String(ev.key.id) !== String(rec.key.id)) return;
    if (ev.key.rev !== rec.key.rev) {
      if (ev.type === 'created') {
        newer.hidden = false;
        fill(newer, 'A newer revision exists: ', h('a', { href: `${tpath}/records/${ev.key.id}/${ev.key.rev}` }, `${ev.key.id}/${ev.key.rev}`));
      }
      return;
    }
    if (busy) return; // our own action reloads when it is done
    let unsaved;
    if (editing) { try { unsaved = stringifyJSON(current(), 2); } catch { unsaved = undefined; } }
    load({ keepForm: true, flash: !editing, unsaved });
  }

  const sub = follow(treeName, onEvent, () => load({ keepForm: true }));
  (async () => {
    keyLink = await keyLinker();
    await load();
  })();
  return () => sub.close();
}
