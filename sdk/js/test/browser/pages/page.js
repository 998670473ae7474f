// The test page's side of the browser tests: one RTM client made from the global
// `AgoraRTM` (the CDN bundle), every event recorded in `T.events`, publish loops that
// number their messages, and a small rendering of chat, presence and topic so that the
// screenshots show what the page saw. Tests drive it with page.evaluate(() => T.…).
/* global AgoraRTM */
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  // The events of RTMClientEventMap, and Switchboard's `error` (payloads that did not
  // decrypt, never delivered as messages).
  const names = ['message', 'presence', 'topic', 'storage', 'lock', 'linkState', 'token',
    'tokenPrivilegeWillExpire', 'error'];

  /** A serialisable copy of an event (Uint8Array payloads become {bytes: [...]}) */
  function plain(e) {
    if (e === null || typeof e !== 'object') return e;
    if (e instanceof Uint8Array) return { bytes: Array.from(e) };
    if (Array.isArray(e)) return e.map(plain);
    const o = {};
    for (const k of Object.keys(e)) o[k] = plain(e[k]);
    return o;
  }

  /** Error → {errorCode, reason, operation} (ErrorInfo, api.md §12.1) */
  function errorInfo(err) {
    return {
      ok: false,
      name: err && err.constructor ? err.constructor.name : typeof err,
      isRTMBaseError: err instanceof AgoraRTM.RTMBaseError,
      error: err && err.error,
      errorCode: err && err.errorCode,
      reason: err && err.reason,
      operation: err && err.operation,
      message: String(err && err.message),
    };
  }

  const T = {
    /** @type {Record<string, any[]>} every event received, by name, in order */
    events: Object.fromEntries(names.map((n) => [n, []])),
    rtm: null,
    userId: '',
    streams: {},
    loops: {},
    /** members of the rendered channel, kept from presence events */
    members: new Map(),
    chatChannel: 'room',

    /**
     * Creates the client pointing at the given server (privateConfig, api.md §2.3).
     * `config` may carry `saltBytes` (number[]) for RTMConfig.salt.
     */
    create(appId, userId, url, config = {}) {
      const { RTM } = AgoraRTM;
      const rtmConfig = {
        presenceTimeout: 300,
        logLevel: 'error',
        ...config,
        privateConfig: { serviceType: ['MESSAGE', 'STREAM'], accessPointHosts: [url] },
      };
      if (config.saltBytes) {
        rtmConfig.salt = new Uint8Array(config.saltBytes);
        delete rtmConfig.saltBytes;
      }
      T.adopt(new RTM(appId, userId, rtmConfig), userId);
      return true;
    },

    /** Records every event of a client made elsewhere (the seed 002 page makes its own). */
    adopt(rtm, userId) {
      T.rtm = rtm;
      T.userId = userId;
      $('user').textContent = userId;
      for (const n of names) {
        rtm.addEventListener(n, (e) => {
          T.events[n].push(n === 'tokenPrivilegeWillExpire' ? { channelName: e } : plain(e));
          T.onEvent(n, e);
        });
      }
    },

    /** Runs `fn` and returns {ok: true, value} or the error's ErrorInfo fields. */
    async attempt(fn) {
      try {
        return { ok: true, value: plain(await fn()) };
      } catch (err) {
        return errorInfo(err);
      }
    },

    stream(name) {
      if (!T.streams[name]) T.streams[name] = T.rtm.createStreamChannel(name);
      return T.streams[name];
    },

    /** Latest link state of the login link (`MESSAGE`) or of stream channel links. */
    linkState(serviceType = 'MESSAGE') {
      const l = T.events.linkState.filter((e) => e.serviceType === serviceType);
      return l.length ? l[l.length - 1].currentState : 'IDLE';
    },

    /** Reconnections of a link (`CONNECTED` reached by operation RECONNECTED). */
    reconnects(serviceType = 'MESSAGE') {
      return T.events.linkState.filter((e) => e.serviceType === serviceType &&
        e.currentState === 'CONNECTED' && e.operation === 'RECONNECTED');
    },

    /**
     * Starts a sequential publish loop: `kind` 'channel' (to channel `target`), 'user'
     * (USER message to user `target`) or 'topic' (topic `target.topic` of stream channel
     * `target.channel`). Message text: `${kind}:${userId}:${seq}`.
     */
    startLoop(name, kind, target, gapMs = 50) {
      const loop = { acked: [], failed: [], running: true, inFlight: 0 };
      T.loops[name] = loop;
      (async () => {
        let seq = 1;
        while (loop.running) {
          const text = `${kind}:${T.userId}:${seq}`;
          loop.inFlight = seq;
          try {
            if (kind === 'channel') await T.rtm.publish(target, text);
            else if (kind === 'user') await T.rtm.publish(target, text, { channelType: 'USER' });
            else await T.stream(target.channel).publishTopicMessage(target.topic, text);
            loop.acked.push(seq);
            seq += 1;
          } catch (err) {
            // Recorded for the test to judge. RTM_ERROR_NOT_CONNECTED (-10025) says "not
            // sent, try again when CONNECTED": an app sends the same message again then
            // (if it had gone out after all, the receiver would see it twice).
            loop.failed.push({ seq, ...errorInfo(err) });
            if (err && err.errorCode === -10025) {
              // (the login link: a stream channel's link reports no state change when
              // the connection under it drops and resumes)
              while (loop.running && T.linkState('MESSAGE') !== 'CONNECTED') {
                await new Promise((r) => setTimeout(r, 20));
              }
            } else {
              seq += 1;
            }
          }
          loop.inFlight = 0;
          await new Promise((r) => setTimeout(r, gapMs));
        }
        loop.done = true;
      })();
    },

    /** Stops every loop; resolves when none has a publish in flight. */
    async stopLoops() {
      for (const l of Object.values(T.loops)) l.running = false;
      while (Object.values(T.loops).some((l) => !l.done)) {
        await new Promise((r) => setTimeout(r, 20));
      }
      return Object.fromEntries(Object.entries(T.loops).map(([k, l]) => [k,
        { acked: l.acked.length, last: l.acked[l.acked.length - 1] ?? 0,
          failed: l.failed.map((f) => `${f.seq}: ${f.errorCode} ${f.reason}`) }]));
    },

    /**
     * Sequence numbers received from `publisher` by message kind, in arrival order:
     * {channel: [...], user: [...], topic: [...]}.
     */
    received(publisher) {
      const out = { channel: [], user: [], topic: [] };
      for (const m of T.events.message) {
        if (typeof m.message !== 'string') continue;
        const [kind, from, seq] = m.message.split(':');
        if (from !== publisher || !(kind in out)) continue;
        out[kind].push(Number(seq));
      }
      return out;
    },

    // -- rendering ---------------------------------------------------------------
    dirty: false,
    onEvent(name, e) {
      if (name === 'presence' && e.channelName === T.chatChannel) {
        if (e.eventType === 'SNAPSHOT') {
          T.members = new Map((e.snapshot || []).map((u) => [u.userId, u.states]));
          T.members.set(T.userId, {});
        } else if (e.eventType === 'REMOTE_JOIN') {
          T.members.set(e.publisher, {});
        } else if (e.eventType === 'REMOTE_LEAVE' || e.eventType === 'REMOTE_TIMEOUT') {
          T.members.delete(e.publisher);
        } else if (e.eventType === 'REMOTE_STATE_CHANGED') {
          T.members.set(e.publisher, e.stateChanged);
        }
      }
      if (!T.dirty) {
        T.dirty = true;
        requestAnimationFrame(T.render);
      }
    },
    render() {
      T.dirty = false;
      const link = T.linkState('MESSAGE');
      $('link').textContent = link;
      $('link').className = `state ${link}`;
      const sl = T.events.linkState.filter((e) => e.serviceType === 'STREAM');
      if (sl.length) {
        const s = sl[sl.length - 1].currentState;
        $('stream-link').textContent = `stream ${s}`;
        $('stream-link').className = `state ${s}`;
      }
      $('chat-channel').textContent = `#${T.chatChannel}`;
      const line = (m) => {
        const li = document.createElement('li');
        if (m.publisher === T.userId) li.className = 'me';
        const text = typeof m.message === 'string' ? m.message : `[${m.message.bytes.length} bytes]`;
        li.textContent = `${m.publisher}${m.channelType === 'USER' ? ' (to you)' : ''}: ${text}`;
        return li;
      };
      const chat = T.events.message.filter((m) => m.channelType !== 'STREAM').slice(-18);
      $('chat').replaceChildren(...chat.map(line));
      const topic = T.events.message.filter((m) => m.channelType === 'STREAM').slice(-8);
      $('topic').replaceChildren(...topic.map((m) => {
        const li = line(m);
        li.textContent = `${m.channelName}/${m.topicName} ${li.textContent}`;
        return li;
      }));
      $('members').replaceChildren(...[...T.members.keys()].sort().map((u) => {
        const li = document.createElement('li');
        li.textContent = u === T.userId ? `${u} (you)` : u;
        return li;
      }));
      const recon = T.reconnects('MESSAGE');
      $('counts').textContent = `${T.events.message.length} messages received, ` +
        `${recon.length} reconnections (${recon.filter((e) => e.isResumed).length} resumed)`;
    },
  };
  window.T = T;
})();
