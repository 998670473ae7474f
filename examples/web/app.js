// The example web app: chat in a message channel, who is here from presence, and live
// cursors over a topic of a stream channel. Written against the agora-rtm-sdk 2.x API;
// the only Switchboard-specific line is privateConfig.accessPointHosts.
/* global AgoraRTM */
'use strict';

const { RTM } = AgoraRTM;
const $ = (id) => document.getElementById(id);
const CURSOR_TOPIC = 'cursors';
const CURSOR_EVERY_MS = 40;

/** A stable colour per user id. */
function colour(userId) {
  let h = 7;
  for (const c of userId) h = (h * 131 + c.codePointAt(0) * 97) % 3600;
  return `hsl(${Math.round(h * 0.1 * 137.5) % 360} 65% 45%)`;
}

async function getJson(url) {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

/** @type {{ rtm: any, stream: any, userId: string, room: string, members: Set<string> }} */
const app = { rtm: null, stream: null, userId: '', room: 'lobby', members: new Set() };
window.app = app;

function renderMembers() {
  const list = [...app.members].sort();
  $('members').replaceChildren(...list.map((u) => {
    const li = document.createElement('li');
    li.style.setProperty('--c', colour(u));
    li.textContent = u === app.userId ? `${u} (you)` : u;
    return li;
  }));
  $('count').textContent = `(${list.length})`;
}

function addChat(publisher, text) {
  const li = document.createElement('li');
  li.style.setProperty('--c', colour(publisher));
  const b = document.createElement('b');
  b.textContent = publisher;
  li.append(b, `: ${text}`);
  $('chat').append(li);
  li.scrollIntoView({ block: 'end' });
}

function cursorOf(userId) {
  let el = document.querySelector(`.cursor[data-user="${CSS.escape(userId)}"]`);
  if (!el) {
    el = document.createElement('div');
    el.className = 'cursor';
    el.dataset.user = userId;
    el.style.setProperty('--c', colour(userId));
    const label = document.createElement('span');
    label.textContent = userId;
    el.append(label);
    $('board').append(el);
  }
  return el;
}

function moveCursor(userId, x, y) {
  const el = cursorOf(userId);
  el.style.left = `${(x * 100).toFixed(2)}%`;
  el.style.top = `${(y * 100).toFixed(2)}%`;
}

function removeUser(userId) {
  app.members.delete(userId);
  document.querySelector(`.cursor[data-user="${CSS.escape(userId)}"]`)?.remove();
  renderMembers();
}

/** Follows the given publishers of the cursor topic (new ones as they appear). */
async function follow(users) {
  const others = users.filter((u) => u !== app.userId &&
    !app.stream.getSubscribedUserList(CURSOR_TOPIC).subscribed.includes(u));
  if (others.length > 0) await app.stream.subscribeTopic(CURSOR_TOPIC, { users: others });
}

async function start(userId) {
  const config = await getJson('/config');
  app.userId = userId;
  app.room = config.room;
  const cursorChannel = `${config.room}-cursors`;
  const rtm = new RTM(config.appId, userId, {
    // A closed tab that did not log out disappears for the others after 30 s (default 300).
    presenceTimeout: 30,
    // The one Switchboard line: where the server is (host[:port] means wss://).
    privateConfig: { serviceType: ['MESSAGE', 'STREAM'], accessPointHosts: [config.url] },
  });
  app.rtm = rtm;

  rtm.addEventListener('linkState', (e) => {
    if (e.serviceType !== 'MESSAGE') return; // the login link; stream channels have their own
    $('link').textContent = e.currentState;
    $('link').className = `state ${e.currentState}`;
  });
  rtm.addEventListener('message', (e) => {
    if (e.channelType === 'MESSAGE' && e.channelName === app.room) {
      addChat(e.publisher, typeof e.message === 'string' ? e.message : '[binary]');
    } else if (e.channelType === 'STREAM' && e.topicName === CURSOR_TOPIC) {
      const { x, y } = JSON.parse(e.message);
      moveCursor(e.publisher, x, y);
    }
  });
  rtm.addEventListener('presence', (e) => {
    if (e.channelName !== app.room) return;
    if (e.eventType === 'SNAPSHOT') {
      app.members = new Set((e.snapshot || []).map((u) => u.userId));
      app.members.add(app.userId);
    } else if (e.eventType === 'REMOTE_JOIN') {
      app.members.add(e.publisher);
    } else if (e.eventType === 'REMOTE_LEAVE' || e.eventType === 'REMOTE_TIMEOUT') {
      removeUser(e.publisher);
    }
    renderMembers();
  });
  rtm.addEventListener('topic', (e) => {
    if (e.channelName !== cursorChannel || !app.stream) return;
    const publishers = e.topicInfos.filter((t) => t.topicName === CURSOR_TOPIC)
      .flatMap((t) => t.publishers.map((p) => p.publisherUserId));
    if (e.eventType === 'SNAPSHOT' || e.eventType === 'REMOTE_JOIN') {
      follow(publishers).catch((err) => console.warn('subscribeTopic', err));
    }
  });
  rtm.addEventListener('tokenPrivilegeWillExpire', async (channelName) => {
    // Empty: the login token; otherwise the stream channel's RTC token.
    const q = channelName ? `&channel=${encodeURIComponent(channelName)}` : '';
    const { token } = await getJson(`/token?user=${encodeURIComponent(userId)}${q}`);
    await rtm.renewToken(token, channelName ? { channelName } : undefined);
  });

  const { token } = await getJson(`/token?user=${encodeURIComponent(userId)}`);
  await rtm.login({ token });
  await rtm.subscribe(app.room, { withMessage: true, withPresence: true });

  const rtc = await getJson(`/token?user=${encodeURIComponent(userId)}&channel=${encodeURIComponent(cursorChannel)}`);
  app.stream = rtm.createStreamChannel(cursorChannel);
  await app.stream.join({ token: rtc.token, withPresence: false });
  await app.stream.joinTopic(CURSOR_TOPIC);
  // Publishers already in the topic (the SNAPSHOT may have come before app.stream was set).
  const who = await rtm.presence.whoNow(app.room, 'MESSAGE');
  await follow(who.occupants.map((o) => o.userId)).catch((err) => console.warn('subscribeTopic', err));

  // At most one cursor message per CURSOR_EVERY_MS, and always the latest position
  // last (a trailing send when the pointer stops inside a window).
  let pending = null;
  let timer = 0;
  const sendCursor = () => {
    timer = 0;
    if (!pending) return;
    const msg = JSON.stringify({ x: +pending.x.toFixed(4), y: +pending.y.toFixed(4) });
    pending = null;
    app.stream.publishTopicMessage(CURSOR_TOPIC, msg).catch(() => { /* link down: the next move sends again */ });
    timer = setTimeout(sendCursor, CURSOR_EVERY_MS);
  };
  $('board').addEventListener('pointermove', (ev) => {
    const r = $('board').getBoundingClientRect();
    pending = { x: (ev.clientX - r.left) / r.width, y: (ev.clientY - r.top) / r.height };
    moveCursor(userId, pending.x, pending.y);
    if (!timer) sendCursor();
  });

  $('me').textContent = userId;
  $('login').hidden = true;
  for (const el of document.querySelectorAll('#say input, #say button')) el.disabled = false;
  $('say').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = $('text').value.trim();
    if (!text) return;
    $('text').value = '';
    await rtm.publish(app.room, text, { customType: 'chat' });
  });
  $('leave').hidden = false;
  $('leave').addEventListener('click', async () => {
    await rtm.logout(); // others see REMOTE_LEAVE at once
    $('leave').hidden = true;
    for (const el of document.querySelectorAll('#say input, #say button')) el.disabled = true;
    for (const el of document.querySelectorAll('.cursor')) el.remove();
    app.members.clear();
    renderMembers();
  });
  // Best effort on closing the tab; otherwise presenceTimeout applies.
  addEventListener('pagehide', () => { void rtm.logout(); });
  renderMembers();
  document.body.dataset.ready = 'true';
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  start($('user').value.trim()).catch((err) => {
    console.error(err);
    alert(`${err.errorCode ?? ''} ${err.reason ?? err.message}`);
  });
});

// ?user=NAME joins at once (handy for opening several tabs).
const preset = new URLSearchParams(location.search).get('user');
if (preset) {
  $('user').value = preset;
  $('login').requestSubmit();
}
