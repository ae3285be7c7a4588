// The Shelf viewer: session, header and hash routing. Routes:
//   #/                         trees
//   #/trees/NAME[?query]       a tree's records (query: sort, desc, field, op, value, offset, after, limit)
//   #/trees/NAME/records/ID[/REV]  one record
//   #/cluster                  members, leader, health, trees
//   #/borrows                  who holds what
//   #/login                    log in with an API token

import { whoami, token, setToken, liveState, viewerClient } from './api.js';
import { h, fill } from './dom.js';
import * as trees from './views/trees.js';
import * as tree from './views/tree.js';
import * as record from './views/record.js';
import * as cluster from './views/cluster.js';
import * as borrows from './views/borrows.js';
import * as login from './views/login.js';

const main = document.getElementById('main');
let cleanup = null;
let session = null; // {who, canWrite, client()}
let loginNote = '';

/** The session: who the token is and what it may do. */
async function loadSession() {
  const who = await whoami();
  let clientID = null;
  session = {
    who,
    canWrite: who.role === 'writer' || who.role === 'admin' || (who.role === '' && who.auth === null),
    isAdmin: who.role === 'admin',
    async client() {
      if (!clientID) clientID = await viewerClient(who);
      return clientID;
    },
    // me is the viewer's client id as far as known without registering
    // one: a writer token's client, or the one this browser registered.
    me: () => clientID || who.client || localStorage.getItem(`shelf.viewer.client.${who.cluster || 'default'}`),
  };
  renderWho();
  return session;
}

function renderWho() {
  const el = document.getElementById('who');
  const out = document.getElementById('logout');
  const w = session && session.who;
  if (!w) { fill(el); out.hidden = !token(); return; }
  const parts = [];
  if (w.auth === false) parts.push('no authentication');
  else if (w.authenticated && w.role) parts.push(h('span', { class: 'role', 'data-testid': 'role' }, w.role), w.name ? ` ${w.name}` : '');
  if (w.node) parts.push(h('span', { class: 'muted' }, `${parts.length ? ' · ' : ''}node ${w.node}`));
  fill(el, parts);
  out.hidden = !token();
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = raw.split('?');
  const segs = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { segs, query: new URLSearchParams(qs || '') };
}

function setNav(name) {
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === name);
}

async function route() {
  if (cleanup) { try { cleanup(); } catch (err) { console.error(err); } cleanup = null; }
  const { segs, query } = parseHash();
  const view = h('div', { class: 'view' });
  fill(main, view);
  try {
    if (segs[0] === 'login') {
      setNav('');
      cleanup = login.mount(view, { note: loginNote, session, onLogin: async (t) => {
        setToken(t);
        const s = await loadSession();
        if (s.who.auth && !s.who.authenticated) { setToken(''); session = null; renderWho(); throw new Error(`the node refused the token: ${s.who.reason || 'not accepted'}`); }
        loginNote = '';
        let target = sessionStorage.getItem('shelf.after-login') || '#/';
        if (target.startsWith('#/login')) target = '#/';
        if (location.hash === target) route(); else location.hash = target;
      } });
      return;
    }
    if (!session) await loadSession();
    if (session.who.auth && !session.who.authenticated) { toLogin('This node requires a token.'); return; }
    if (segs.length === 0 || segs[0] === 'trees' && segs.length === 1) { setNav('trees'); cleanup = trees.mount(view, session); return; }
    if (segs[0] === 'trees' && segs.length === 2) { setNav('trees'); cleanup = tree.mount(view, session, segs[1], query); return; }
    if (segs[0] === 'trees' && segs[2] === 'records' && segs.length >= 4) {
      setNav('trees');
      cleanup = record.mount(view, session, segs[1], segs[3], segs[4] || '');
      return;
    }
    if (segs[0] === 'cluster') { setNav('cluster'); cleanup = cluster.mount(view, session); return; }
    if (segs[0] === 'borrows') { setNav('borrows'); cleanup = borrows.mount(view, session); return; }
    fill(view, h('h1', {}, 'Not found'), h('p', {}, 'No such page: ', h('code', {}, location.hash), '. ', h('a', { href: '#/' }, 'Trees')));
  } catch (err) {
    fill(view, h('div', { class: 'msg msg-error', 'data-testid': 'message', 'data-kind': 'error' }, err.code ? `${err.code}: ${err.message}` : String(err.message || err)));
  }
}

function toLogin(note) {
  loginNote = note;
  if (!location.hash.startsWith('#/login')) sessionStorage.setItem('shelf.after-login', location.hash || '#/');
  location.hash = '#/login';
}

window.addEventListener('shelf:unauthenticated', (e) => {
  const had = !!token();
  setToken('');
  session = null;
  renderWho();
  toLogin(had ? `The node refused the token: ${e.detail}` : 'This node requires a token.');
});

document.getElementById('logout').addEventListener('click', () => {
  setToken('');
  session = null;
  renderWho();
  toLogin('Logged out.');
});

liveState.addEventListener('change', (e) => {
  const el = document.getElementById('live');
  el.dataset.state = e.detail.state;
  el.title = { live: 'live: following the node\'s events', down: `reconnecting: ${e.detail.detail || ''}`, off: 'not following events' }[e.detail.state] || '';
});

window.addEventListener('hashchange', route);
route();
