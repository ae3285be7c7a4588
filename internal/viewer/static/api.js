// The node's HTTP API as the viewer uses it: JSON requests with the
// session's token, errors as APIError (the API's code and message), the
// viewer's own registered client, and the event stream.

import { parseJSON, stringifyJSON } from './json.js';

const TOKEN = 'shelf.token';

/** token returns the session's API token ('' when none). */
export const token = () => sessionStorage.getItem(TOKEN) || '';

/** setToken keeps (or, with '', forgets) the session's token. */
export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN, t);
  else sessionStorage.removeItem(TOKEN);
}

/** APIError is an error answer of the API: its HTTP status, code and message. */
export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra) {
  const hd = { Accept: 'application/json', ...(extra || {}) };
  const t = token();
  if (t) hd.Authorization = `Bearer ${t}`;
  return hd;
}

async function failure(res) {
  let code = `http_${res.status}`;
  let message = res.statusText || 'request failed';
  try {
    const body = await res.text();
    try {
      const e = JSON.parse(body);
      if (e && e.code) { code = e.code; message = e.message || message; }
      else if (body.trim()) message = body.trim();
    } catch { if (body.trim()) message = body.trim().slice(0, 500); }
  } catch { /* the body is lost; status says enough */ }
  if (res.status === 401) window.dispatchEvent(new CustomEvent('shelf:unauthenticated', { detail: message }));
  return new APIError(res.status, code, message);
}

/** request sends one API request and returns the decoded JSON answer
 * (null for an empty one). opts.body: a value sent as JSON; opts.cbor:
 * bytes sent as application/cbor. A 401 also fires shelf:unauthenticated. */
export async function request(method, path, opts = {}) {
  const init = { method, headers: headers(opts.headers), signal: opts.signal, cache: 'no-store' };
  if (opts.cbor) {
    init.headers['Content-Type'] = 'application/cbor';
    init.body = opts.cbor;
  } else if (opts.body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = stringifyJSON(opts.body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new APIError(0, 'unreachable', `the node did not answer (${err.message})`);
  }
  if (!res.ok) throw await failure(res);
  const text = await res.text();
  return text ? parseJSON(text) : null;
}

export const get = (path, opts) => request('GET', path, opts);

const q = (params) => {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
};
export { q as query };

const e = encodeURIComponent;
/** recPath is the API path of a record revision (rev 0: the latest). */
export const recPath = (tree, key) => `/v1/trees/${e(tree)}/records/${key.id}${key.rev ? '/' + key.rev : ''}`;

/** whoami tells who the session is. A node without the route (older)
 * is asked for its status instead: the role is then unknown. */
export async function whoami() {
  try {
    return await get('/v1/whoami');
  } catch (err) {
    if (err.status !== 404 && err.status !== 405) throw err;
  }
  const st = await get('/v1/status');
  return { auth: null, authenticated: true, name: '', role: '', client: '', node: st.node_id, cluster: st.cluster_id };
}

/** clientNames maps client ids to names (GET /v1/clients), cached until
 * refreshed with force. */
let namesCache = null;
export async function clientNames(force) {
  if (!namesCache || force) {
    const list = await get('/v1/clients');
    namesCache = new Map((list || []).map((c) => [c.id, c.name]));
  }
  return namesCache;
}

/** browserID is a random id this browser keeps, for the viewer's client name. */
export function browserID() {
  let id = localStorage.getItem('shelf.viewer.browser');
  if (!id) {
    const b = crypto.getRandomValues(new Uint8Array(4));
    id = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    localStorage.setItem('shelf.viewer.browser', id);
  }
  return id;
}

/** viewerClient returns the id of the client the viewer acts as: the
 * client a writer token is bound to, else the one this browser registered
 * for the cluster (kept in localStorage), else a new viewer@ID. */
export async function viewerClient(who) {
  if (who.client) return who.client;
  const key = `shelf.viewer.client.${who.cluster || 'default'}`;
  const names = await clientNames(true);
  const id = localStorage.getItem(key);
  // An unbound writer token must register its own client (which binds
  // it); an admin (or a node without auth) may act as the one kept.
  if (id && names.has(id) && who.role !== 'writer') return id;
  const c = await request('POST', '/v1/clients', { body: { name: `viewer@${browserID()}` } });
  localStorage.setItem(key, c.id);
  names.set(c.id, c.name);
  return c.id;
}

/** The state of the event stream, for the header's indicator. */
export const liveState = new EventTarget();
function setLive(state, detail) {
  liveState.dispatchEvent(new CustomEvent('change', { detail: { state, detail } }));
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

/** follow subscribes to the node's events (of one tree, or all with
 * tree ''), from now on: onEvent(api.Event) for each, onReset() when the
 * node lost events the view may have missed (re-read the state). It reads
 * GET /v1/events/stream (Server-Sent Events through fetch, so the token
 * goes in a header), resumes with Last-Event-ID after a cut with backoff
 * (0.5 s doubling to 15 s), and falls back to long polls of /v1/events on
 * a node without the stream route. close() stops it. */
export function follow(tree, onEvent, onReset) {
  const ctrl = new AbortController();
  const signal = ctrl.signal;
  let last = null; // index of the last event (or page) seen
  let poll = false;
  let delay = 500;

  async function stream() {
    const hd = headers({ Accept: 'text/event-stream' });
    // After a cut, the last event's id ("index" or "index.k": the k-th
    // event of an entry) says where to go on, in the header only.
    if (last !== null) hd['Last-Event-ID'] = String(last);
    const res = await fetch(`/v1/events/stream${q({ tree, from: last === null ? 'now' : undefined })}`, { headers: hd, signal, cache: 'no-store' });
    if (!res.ok) throw await failure(res);
    setLive('live');
    delay = 500;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let ev = { id: null, type: 'message', data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error('the stream ended');
      buf += value;
      let i;
      while ((i = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + (buf[i] === '\r' && buf[i + 1] === '\n' ? 2 : 1));
        if (line === '') {
          if (ev.id !== null) last = ev.id;
          if (ev.type === 'reset') onReset();
          else if (ev.type === 'error') {
            // The node ends the stream and says why ({code, message}).
            let e = {};
            try { e = JSON.parse(ev.data.join('\n')); } catch { /* reconnect all the same */ }
            if (e.code === 'unauthenticated' || e.code === 'forbidden') {
              window.dispatchEvent(new CustomEvent('shelf:unauthenticated', { detail: e.message || e.code }));
              throw new APIError(401, e.code, e.message || '');
            }
            throw new APIError(503, e.code || 'unavailable', e.message || 'the event stream ended');
          } else if (ev.data.length) {
            try { onEvent(parseJSON(ev.data.join('\n'))); } catch (err) { console.error('viewer: event', err); }
          }
          ev = { id: null, type: 'message', data: [] };
          continue;
        }
        if (line.startsWith(':')) continue;
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        const val = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
        if (field === 'id') ev.id = val;
        else if (field === 'event') ev.type = val;
        else if (field === 'data') ev.data.push(val);
      }
    }
  }

  async function longPoll() {
    setLive('live');
    for (;;) {
      let page;
      try {
        // A stream's "index.k" (part of entry index seen): the paged
        // route goes by whole entries, so that entry comes again.
        const from = last === null ? 'now' : String(last).includes('.') ? String(BigInt(String(last).split('.')[0]) - 1n) : String(last);
        page = await get(`/v1/events${q({ tree, from, wait: '30s' })}`, { signal });
      } catch (err) {
        if (err.code !== 'compacted') throw err;
        onReset();
        last = null;
        continue;
      }
      setLive('live');
      delay = 500;
      last = page.next;
      for (const ev of page.events || []) onEvent(ev);
    }
  }

  (async () => {
    while (!signal.aborted) {
      try {
        if (poll) await longPoll(); else await stream();
      } catch (err) {
        if (signal.aborted) break;
        if (!poll && (err.status === 404 || err.status === 405)) { poll = true; continue; }
        if (err.status === 401) { setLive('off', 'not logged in'); break; }
        setLive('down', err.message);
        await sleep(delay * (0.75 + Math.random() / 2), signal);
        delay = Math.min(delay * 2, 15000);
      }
    }
  })();
  return { close: () => { ctrl.abort(); setLive('off'); } };
}
