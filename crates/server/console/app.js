// The console's pages: login, overview, channels, one channel, users, publish and
// configuration. Hash routes (#/channels, #/channel/message/NAME, …); each page polls
// the server API while it is shown and stops when left. Everything shown is built
// with DOM nodes and text, never parsed HTML, so names and messages cannot inject.

import { api, creds, seg, setCreds } from './api.js';
import { lineChart } from './chart.js';

const view = /** @type {HTMLElement} */ (document.getElementById('view'));
const statusEl = /** @type {HTMLElement} */ (document.getElementById('status'));

/**
 * Builds an element: h('a', { href: '#' }, 'text', child…).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node | string | number | null | undefined | false)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Shows a short message in the status line (errors in red). */
function say(text, error = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle('error', error);
}

const fmt = (n) => (Number.isInteger(n) ? String(n) : n.toFixed(1));
const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : '');

/** Runs `fn` now and every `ms` until the returned stop is called. */
function every(ms, fn) {
  let stopped = false;
  let timer = 0;
  const tick = async () => {
    try {
      await fn();
    } catch (e) {
      if (!stopped) say(String(e.message ?? e), true);
    }
    if (!stopped) timer = window.setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** A table of rows; `cols` are [header, cell(row)]. */
function table(label, cols, rows, empty = 'none') {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'scroll' },
    h('table', { 'aria-label': label },
      h('thead', {}, h('tr', {}, ...cols.map(([t]) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ...rows.map((r) => h('tr', {}, ...cols.map(([, f]) => h('td', {}, f(r))))))));
}

/** Replaces the children of the element with id `id`. */
function fill(id, ...nodes) {
  const el = document.getElementById(id);
  if (el) el.replaceChildren(...nodes);
}

/** @type {WeakMap<Element, string>} what each element last showed */
const shown = new WeakMap();

/**
 * Renders `data` into the element with id `id` only when it changed since the last
 * poll, so that links and buttons stay put (and keep the focus) between polls.
 */
function show(id, data, render) {
  const el = document.getElementById(id);
  if (!el) return;
  const key = JSON.stringify(data);
  if (shown.get(el) === key) return;
  shown.set(el, key);
  el.replaceChildren(...[render()].flat());
}

// ---- login ----

function loginPage() {
  const err = h('p', { class: 'error', id: 'login-error', role: 'alert' });
  const form = h('form', { id: 'login', class: 'card narrow', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Log in'),
    h('p', {}, "The app's server API credentials (config [[apps]] api_key and api_secret)."),
    h('label', {}, 'App id', h('input', { name: 'appId', required: true, autocomplete: 'username', spellcheck: 'false' })),
    h('label', {}, 'API key', h('input', { name: 'key', required: true, spellcheck: 'false' })),
    h('label', {}, 'API secret', h('input', { name: 'secret', type: 'password', required: true, autocomplete: 'current-password' })),
    h('button', { type: 'submit' }, 'Log in'),
    err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = new FormData(form);
    const c = { appId: String(d.get('appId')).trim(), key: String(d.get('key')), secret: String(d.get('secret')) };
    try {
      await api('node', { creds: c });
      setCreds(c);
      if (!location.hash || location.hash === '#/login') location.hash = '#/overview';
      else route();
    } catch (e) {
      err.textContent = `Login failed: ${e.message}`;
    }
  });
  view.replaceChildren(form);
  form.querySelector('input')?.focus();
  return () => {};
}

// ---- overview ----

function overviewPage() {
  const stat = (id, label) => h('div', { class: 'stat' }, h('span', { class: 'label' }, label), h('output', { id, 'aria-label': label }, '–'));
  view.replaceChildren(
    h('h1', {}, 'Overview'),
    h('section', { class: 'stats', 'aria-label': 'Now' },
      stat('stat-connections', 'Connections'),
      stat('stat-sessions', 'Sessions (node)'),
      stat('stat-app-sessions', 'Sessions (this app)'),
      stat('stat-in', 'Messages in /s'),
      stat('stat-out', 'Deliveries /s'),
      stat('stat-uptime', 'Uptime')),
    h('section', { class: 'charts', 'aria-label': 'Last two minutes' },
      h('figure', {}, h('figcaption', {}, 'Connections'), h('div', { id: 'chart-connections' })),
      h('figure', {}, h('figcaption', {}, 'Sessions'), h('div', { id: 'chart-sessions' })),
      h('figure', {}, h('figcaption', {}, 'Messages in per second (publishes)'), h('div', { id: 'chart-in' })),
      h('figure', {}, h('figcaption', {}, 'Messages out per second (deliveries)'), h('div', { id: 'chart-out' }))),
    h('section', { 'aria-label': 'Totals' }, h('h2', {}, 'Totals since start'), h('div', { id: 'totals' })));
  return every(1000, async () => {
    const s = await api('stats');
    const last = s.series[s.series.length - 1];
    fill('stat-connections', String(s.connections));
    fill('stat-sessions', String(s.sessions));
    fill('stat-app-sessions', String(s.app_sessions));
    fill('stat-in', fmt(last?.publishes_per_s ?? 0));
    fill('stat-out', fmt(last?.deliveries_per_s ?? 0));
    fill('stat-uptime', `${s.uptime_s} s`);
    const series = (k) => s.series.map((x) => x[k]);
    const chart = (id, k, label) => {
      const v = series(k);
      fill(id, lineChart(v, label), h('span', { class: 'peak' }, `peak ${fmt(Math.max(0, ...v))}`));
    };
    chart('chart-connections', 'connections', 'connections, last two minutes');
    chart('chart-sessions', 'sessions', 'sessions, last two minutes');
    chart('chart-in', 'publishes_per_s', 'publishes per second, last two minutes');
    chart('chart-out', 'deliveries_per_s', 'deliveries per second, last two minutes');
    const kinds = Object.keys(s.publishes_total);
    fill('totals', table('totals by channel type', [
      ['Channel type', (k) => k],
      ['Subscriptions', (k) => s.subscriptions[k]],
      ['Publishes', (k) => s.publishes_total[k]],
      ['Deliveries', (k) => s.deliveries_total[k]],
    ], kinds), h('p', {}, `Logins: ${s.logins_total} · kicks: ${s.kicks_total}`));
    say(`updated ${time(s.now_ms)}`);
  });
}

// ---- channels ----

function channelsPage() {
  let page = '';
  /** @type {string[]} */ const back = [];
  const search = h('input', { type: 'search', id: 'channel-search', placeholder: 'name contains…', 'aria-label': 'Search channels' });
  const kind = h('select', { id: 'channel-type', 'aria-label': 'Channel type' },
    h('option', { value: '' }, 'all types'), h('option', { value: 'message' }, 'message'), h('option', { value: 'stream' }, 'stream'));
  const prev = h('button', { type: 'button', disabled: true }, '← Previous');
  const next = h('button', { type: 'button', disabled: true }, 'Next →');
  view.replaceChildren(
    h('h1', {}, 'Channels'),
    h('p', { class: 'hint' }, 'Channels with subscribers on this node. Rates count publications (messages and events) between two reads.'),
    h('div', { class: 'toolbar' }, search, kind, prev, next, h('span', { id: 'channel-total' })),
    h('div', { id: 'channel-list' }));
  let nextPage = '';
  const load = async () => {
    const q = new URLSearchParams({ search: search.value, channel_type: kind.value, page, limit: '25' });
    const r = await api(`channels?${q}`);
    nextPage = r.next_page;
    prev.disabled = back.length === 0;
    next.disabled = !nextPage;
    fill('channel-total', `${r.total} channel${r.total === 1 ? '' : 's'}`);
    show('channel-list', r.channels, () => table('channels', [
      ['Name', (c) => h('a', { href: `#/channel/${c.channel_type}/${seg(c.channel)}` }, c.channel)],
      ['Type', (c) => c.channel_type],
      ['Members', (c) => (c.members ?? '–')],
      ['Subscribers (node)', (c) => c.subscribers],
      ['Msgs /s', (c) => fmt(c.rate_per_s)],
      ['Last offset', (c) => c.offset],
    ], r.channels, 'No channels match.'));
  };
  const reset = () => { page = ''; back.length = 0; load().catch((e) => say(e.message, true)); };
  search.addEventListener('input', reset);
  kind.addEventListener('change', reset);
  next.addEventListener('click', () => { back.push(page); page = nextPage; load(); });
  prev.addEventListener('click', () => { page = back.pop() ?? ''; load(); });
  return every(2000, load);
}

// ---- one channel ----

function channelPage(type, name) {
  const path = `${type}/${seg(name)}`;
  const tail = h('ol', { id: 'tail', class: 'tail', 'aria-live': 'polite', 'aria-label': 'Live messages' });
  view.replaceChildren(
    h('p', {}, h('a', { href: '#/channels' }, '← Channels')),
    h('h1', {}, h('span', { class: 'tag' }, type), ' ', name),
    h('div', { class: 'grid' },
      h('section', { class: 'card', 'aria-labelledby': 'h-members' }, h('h2', { id: 'h-members' }, 'Members'), h('div', { id: 'members' })),
      h('section', { class: 'card', 'aria-labelledby': 'h-locks' }, h('h2', { id: 'h-locks' }, 'Locks'), h('div', { id: 'locks' })),
      h('section', { class: 'card', 'aria-labelledby': 'h-meta' }, h('h2', { id: 'h-meta' }, 'Metadata'), h('div', { id: 'metadata' })),
      h('section', { class: 'card', 'aria-labelledby': 'h-tail' }, h('h2', { id: 'h-tail' }, 'Live tail'), tail,
        type === 'message' ? publishForm(type, name) : null),
      h('section', { class: 'card wide', 'aria-labelledby': 'h-history' }, h('h2', { id: 'h-history' }, 'History (latest)'), h('div', { id: 'history' }))));
  const section = async (id, fn) => {
    try {
      await fn();
    } catch (e) {
      show(id, { error: e.message }, () => h('p', { class: 'empty' }, e.message));
    }
  };
  const slow = every(2000, async () => {
    await section('members', async () => {
      const m = await api(`presence/${path}?include_state=true`);
      show('members', m, () => [table('members', [
        ['User', (u) => h('a', { href: `#/users/${seg(u.user_id)}`, 'data-member': u.user_id }, u.user_id)],
        ['State', (u) => (Object.keys(u.states).length === 0 ? '–'
          : h('dl', { class: 'kv' }, ...Object.entries(u.states).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])))],
      ], m.members, 'Nobody present.'), h('p', { class: 'hint' }, `${m.total_occupancy} present`)]);
    });
    await section('locks', async () => {
      const l = await api(`locks/${path}`);
      show('locks', l.locks, () => table('locks', [
        ['Lock', (x) => x.lock_name], ['Owner', (x) => x.owner || '–'], ['TTL s', (x) => x.ttl],
      ], l.locks, 'No locks.'));
    });
    await section('metadata', async () => {
      const m = await api(`metadata/${path}`);
      show('metadata', m, () => [table('metadata', [
        ['Key', (i) => i.key], ['Value', (i) => i.value], ['Revision', (i) => i.revision],
        ['Author', (i) => i.author], ['Updated', (i) => time(i.updated)],
      ], m.items, 'No metadata.'), h('p', { class: 'hint' }, `major revision ${m.major_revision}`)]);
    });
    if (type === 'message') {
      await section('history', async () => {
        const r = await api(`history/${path}?count=20`);
        show('history', r.messages, () => table('history', [
          ['Time', (x) => time(x.timestamp)], ['Publisher', (x) => x.publisher],
          ['Type', (x) => x.custom_type], ['Message', (x) => x.message ?? '(binary)'],
        ], r.messages, 'No stored messages.'));
      });
    } else {
      fill('history', h('p', { class: 'empty' }, 'Stream channels keep no history.'));
    }
  });
  let since = '';
  const fast = every(1000, async () => {
    const r = await api(`tail/${path}${since ? `?since=${since}` : ''}`);
    since = r.position;
    if (!r.complete) tail.append(h('li', { class: 'gap' }, '… some messages were missed …'));
    for (const m of r.messages) {
      tail.append(h('li', { class: m.kind === 'text' || m.kind === 'binary' ? 'msg' : 'event' },
        h('time', {}, time(m.timestamp_ms)), ' ',
        h('b', {}, m.publisher), ' ',
        m.topic ? h('span', { class: 'tag' }, m.topic) : null, ' ',
        m.kind === 'text' ? h('span', { class: 'text' }, m.message)
          : m.kind === 'binary' ? h('span', { class: 'text' }, `(binary ${m.message_base64.length} b64)`)
            : h('span', { class: 'tag' }, `${m.kind} event`)));
    }
    while (tail.children.length > 200) tail.firstElementChild?.remove();
  });
  return () => { slow(); fast(); };
}

/** A form that publishes to a channel or a user through the API. */
function publishForm(type = 'message', channel = '') {
  const out = h('p', { role: 'status', class: 'hint' });
  const form = h('form', { class: 'publish', 'aria-label': 'Publish' },
    channel ? null : h('label', {}, 'To',
      h('select', { name: 'channel_type' }, h('option', { value: 'message' }, 'message channel'), h('option', { value: 'user' }, 'user'))),
    channel ? null : h('label', {}, 'Channel or user id', h('input', { name: 'channel', required: true, spellcheck: 'false' })),
    h('label', {}, 'Message', h('textarea', { name: 'message', required: true, rows: 2 })),
    h('label', {}, 'Custom type', h('input', { name: 'custom_type', spellcheck: 'false' })),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'store' }), 'store in history'),
    h('button', { type: 'submit' }, 'Publish'), out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = new FormData(form);
    const body = {
      channel_type: channel ? type : String(d.get('channel_type')),
      channel: channel || String(d.get('channel')),
      message: String(d.get('message')),
      custom_type: String(d.get('custom_type') ?? ''),
      store_in_history: d.get('store') === 'on',
    };
    try {
      const r = await api('publish', { method: 'POST', body });
      out.textContent = `Published at ${time(r.timestamp)}.`;
      /** @type {HTMLTextAreaElement} */ (form.elements.namedItem('message')).value = '';
    } catch (e) {
      out.textContent = `Not published: ${e.message}`;
    }
  });
  return form;
}

// ---- users ----

function usersPage(selected) {
  const search = h('input', { type: 'search', id: 'user-search', placeholder: 'user id contains…', 'aria-label': 'Search users', value: selected ?? '' });
  view.replaceChildren(
    h('h1', {}, 'Users'),
    h('p', { class: 'hint' }, 'Sessions of this app on this node.'),
    h('div', { class: 'toolbar' }, search, h('span', { id: 'user-total' })),
    h('div', { id: 'user-list' }),
    h('div', { id: 'user-detail' }));
  let current = selected ?? '';
  const detail = async () => {
    if (!current) { show('user-detail', null, () => []); return; }
    const u = seg(current);
    let channels = [];
    let where = '';
    try {
      channels = (await api(`users/${u}/channels`)).channels;
    } catch (e) { where = e.message; }
    let meta = null;
    try { meta = await api(`metadata/user/${u}`); } catch { meta = null; }
    show('user-detail', { current, channels, where, meta }, () => {
      const kick = h('button', { type: 'button', class: 'danger', id: 'kick' }, `Kick ${current}`);
      kick.addEventListener('click', async () => {
        if (!window.confirm(`Kick ${current}? Its client is disconnected.`)) return;
        try {
          await api(`users/${u}/kick`, { method: 'POST', body: { reason: 'kicked from the console' } });
          say(`${current} kicked`);
          load();
        } catch (e) { say(`Kick failed: ${e.message}`, true); }
      });
      return h('section', { class: 'card', 'aria-labelledby': 'h-user' },
        h('h2', { id: 'h-user' }, current),
        h('h3', {}, 'Channels (whereNow)'),
        where ? h('p', { class: 'empty' }, where) : table('channels of the user', [
          ['Channel', (c) => h('a', { href: `#/channel/${c.channel_type}/${seg(c.channel)}` }, c.channel)],
          ['Type', (c) => c.channel_type]], channels, 'In no channel.'),
        h('h3', {}, 'User metadata'),
        meta ? table('user metadata', [['Key', (i) => i.key], ['Value', (i) => i.value], ['Revision', (i) => i.revision]], meta.items, 'No metadata.')
          : h('p', { class: 'empty' }, 'No metadata.'),
        kick);
    });
  };
  const load = async () => {
    const r = await api(`users?${new URLSearchParams({ search: search.value, limit: '50' })}`);
    fill('user-total', `${r.total} session${r.total === 1 ? '' : 's'}`);
    show('user-list', r.users, () => table('users', [
      ['User', (s) => h('a', { href: `#/users/${seg(s.user_id)}`, 'data-user': s.user_id }, s.user_id)],
      ['Connection', (s) => (s.attached ? 'attached' : 'waiting for resume')],
      ['Subscriptions', (s) => s.subscriptions],
      ['Streams', (s) => s.streams],
      ['Session', (s) => h('code', {}, s.session_id)],
    ], r.users, 'No sessions match.'));
    await detail();
  };
  search.addEventListener('input', () => { load().catch((e) => say(e.message, true)); });
  if (selected) current = selected;
  return every(2000, load);
}

// ---- publish, config ----

function publishPage() {
  view.replaceChildren(h('h1', {}, 'Publish'), h('div', { class: 'card narrow' }, publishForm()));
  return () => {};
}

function configPage() {
  view.replaceChildren(h('h1', {}, 'Configuration'), h('div', { id: 'config' }, 'Loading…'));
  const kv = (obj) => table('settings', [['Setting', ([k]) => k], ['Value', ([, v]) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v))]],
    Object.entries(obj));
  return every(5000, async () => {
    const n = await api('node');
    const { limits, ...app } = n.app;
    show('config', n, () => [
      h('section', { class: 'card', 'aria-labelledby': 'h-nodes' }, h('h2', { id: 'h-nodes' }, 'Nodes'),
        table('nodes', [['Node', (r) => (r.this ? `${r.id} (this node)` : r.id)],
          ['Last heartbeat', (r) => (r.this && n.nodes.length === 1 ? 'now' : `${(r.heartbeat_age_ms / 1000).toFixed(1)} s ago`)],
          ['Version', (r) => (r.this ? n.version : '—')], ['Started', (r) => (r.this ? new Date(n.started_ms).toLocaleString() : '—')],
          ['Services', (r) => (r.this ? Object.entries(n.services).filter(([, on]) => on).map(([k]) => k).join(', ') : '—')],
          ['Apps', (r) => (r.this ? String(n.apps) : '—')]], n.nodes)),
      h('section', { class: 'card', 'aria-labelledby': 'h-app' }, h('h2', { id: 'h-app' }, 'This app (secrets masked)'), kv(app), h('h3', {}, 'Limits'), kv(limits)),
      h('section', { class: 'card', 'aria-labelledby': 'h-node' }, h('h2', { id: 'h-node' }, 'Node settings'), kv(n.settings))]);
  });
}

// ---- routing ----

let stop = () => {};

function route() {
  stop();
  const c = creds();
  const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));
  const logout = /** @type {HTMLElement} */ (document.getElementById('logout'));
  nav.hidden = !c;
  logout.hidden = !c;
  fill('who', c ? `app ${c.appId.slice(0, 8)}… · ${c.key}` : '');
  if (!c) { stop = loginPage(); return; }
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  for (const a of nav.querySelectorAll('a')) {
    const here = a.getAttribute('href') === `#/${parts[0] === 'channel' ? 'channels' : parts[0]}`;
    if (here) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  say('');
  switch (parts[0]) {
    case 'channels': stop = channelsPage(); break;
    case 'channel': stop = channelPage(parts[1] === 'stream' ? 'stream' : 'message', parts.slice(2).join('/')); break;
    case 'users': stop = usersPage(parts[1]); break;
    case 'publish': stop = publishPage(); break;
    case 'config': stop = configPage(); break;
    default: stop = overviewPage();
  }
  view.focus({ preventScroll: true });
}

document.getElementById('logout')?.addEventListener('click', () => {
  setCreds(null);
  location.hash = '#/login';
  route();
});
window.addEventListener('hashchange', route);
route();
