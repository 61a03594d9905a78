// Switchboard web chat front end. Plain ES2020, no dependencies, talks only to its own origin.
'use strict';
(() => {
  const KEY = 'switchboard.conversation';
  const MAX = 20000;
  const NEAR_LIMIT = 18000;
  const LOST = 'Connection lost — please retry.';
  const INVALID = 'Received an invalid response from the server.';
  const $ = (sel) => document.querySelector(sel);
  const log = $('#log');
  const form = $('#composer');
  const input = $('#input');
  const sendBtn = $('#send');
  const counter = $('#counter');
  const tooLong = $('#too-long');

  const bot = ($('meta[name="switchboard-bot"]')?.getAttribute('content') || '').trim() || 'Support';
  $('#subtitle').textContent = bot;
  document.title = `${bot} — Switchboard`;

  let fresh = false; // a conversation id made on this page: nothing to restore (no 404 asked for)
  let conv = loadConversation();
  let current = null; // { ctrl: AbortController } of the in-flight chat request
  let handoffPending = false;
  let polling = null; // the conversation being polled for a human's messages
  const shown = new Set(); // reply ids on screen
  let lastSeq = 0; // the newest transcript line fetched from the server
  const POLL_MS = 3000;

  class UserError extends Error {}
  const messageOf = (e) => (e instanceof UserError ? e.message : LOST);

  // Build an element; string children become text nodes, so they are always escaped.
  function el(tag, attrs = {}, ...kids) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'class') n.className = v;
      else if (k === 'text') n.textContent = v;
      else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of kids) if (c != null) n.append(c);
    return n;
  }

  function newId() {
    if (window.crypto?.randomUUID) return crypto.randomUUID();
    // randomUUID needs a secure context (https or localhost); fall back for plain-http LAN use.
    const h = [...crypto.getRandomValues(new Uint8Array(16))].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${'89ab'[parseInt(h[16], 16) & 3]}${h.slice(17, 20)}-${h.slice(20)}`;
  }

  function store(id) {
    try { localStorage.setItem(KEY, id); } catch { /* storage disabled: id lives for this page only */ }
    return id;
  }

  function loadConversation() {
    let id = null;
    try { id = localStorage.getItem(KEY); } catch { /* storage disabled */ }
    fresh = !id;
    return id || store(newId());
  }

  const nearBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 80;

  // Append (or swap in) a node, keeping the view pinned to the bottom if it was there.
  function put(node, old = null, force = false) {
    const stick = force || nearBottom();
    log.querySelector('.empty')?.remove();
    if (old?.isConnected) old.replaceWith(node); else log.append(node);
    if (stick) log.scrollTop = log.scrollHeight;
    return node;
  }

  function showEmpty() {
    log.replaceChildren(el('p', { class: 'empty', text: `Ask ${bot} a question to get started.` }));
  }

  function setBusy(on) {
    input.disabled = sendBtn.disabled = on;
    form.setAttribute('aria-busy', String(on));
    if (!on) input.focus({ preventScroll: true });
  }

  async function errorMessage(resp) {
    try {
      const j = await resp.json();
      if (j && j.error) return String(j.error);
    } catch { /* not JSON */ }
    return `Something went wrong (HTTP ${resp.status}). Please retry.`;
  }

  async function api(path, body, signal) {
    const opts = body === undefined ? { signal } : {
      method: 'POST', body: JSON.stringify(body), signal,
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream, application/json' },
    };
    try {
      return await fetch(path, opts);
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new UserError(LOST);
    }
  }

  async function json(resp) {
    if (!resp.ok) throw new UserError(await errorMessage(resp));
    try { return await resp.json(); } catch { throw new UserError(INVALID); }
  }

  // ---------- rendering ----------
  const userBubble = (text) => el('div', { class: 'msg user' }, el('div', { class: 'bubble', text }));

  const typingBubble = () => el('div', { class: 'msg bot typing', 'aria-busy': 'true' },
    el('div', { class: 'bubble' },
      el('span', { class: 'dots', 'aria-hidden': 'true' }, el('i'), el('i'), el('i')),
      el('span', { class: 'sr-only', text: 'typing…' })));

  const handoffButton = (label) => el('button',
    { type: 'button', class: 'btn handoff-btn', disabled: handoffPending, onclick: handoff }, label || 'Talk to a human');

  const errorBubble = (message) => el('div', { class: 'msg bot error' },
    el('div', { class: 'bubble' },
      el('p', { text: message || 'Something went wrong. Please retry.' }),
      el('div', { class: 'tools' }, handoffButton())));

  function citationItem(c) {
    const title = String(c.title || c.url || 'Source');
    const url = String(c.url || '');
    const li = el('li', { title: c.snippet || null });
    if (/^https?:\/\//i.test(url)) {
      li.append(el('a', { href: url, target: '_blank', rel: 'noopener noreferrer', text: title }));
    } else {
      li.append(title);
      if (url && url !== title) li.append(' ', el('span', { class: 'muted path', text: url }));
    }
    const meta = [c.source, c.updated_at && `updated ${c.updated_at}`].filter(Boolean).join(' · ');
    if (meta) li.append(' ', el('span', { class: 'muted', text: `— ${meta}` }));
    return li;
  }

  async function sendFeedback(reply, value, btn, note) {
    const group = btn.parentElement.querySelectorAll('.fb');
    group.forEach((b) => { b.disabled = true; });
    note.classList.remove('bad');
    clearTimeout(note.timer);
    try {
      const j = await json(await api('/api/feedback', { conversation: conv, reply_id: reply.id, value }));
      btn.classList.add('chosen');
      btn.setAttribute('aria-pressed', 'true');
      note.textContent = (j && j.message) || 'Thanks for your feedback!';
      note.timer = setTimeout(() => { note.textContent = ''; }, 4000);
    } catch (e) {
      group.forEach((b) => { b.disabled = false; });
      note.classList.add('bad');
      note.textContent = messageOf(e);
    }
  }

  // What the visitor pressed on a reply, restored after a reload: that button stays marked
  // and the group can't be pressed again.
  function markChosen(buttons, chosen) {
    if (!chosen) return;
    for (const b of buttons) {
      b.disabled = true;
      if (b.dataset.value === chosen) { b.classList.add('chosen'); b.setAttribute('aria-pressed', 'true'); }
    }
  }

  function replyBubble(reply, chosen = '') {
    reply = reply || {};
    if (reply.id) shown.add(reply.id);
    const answer = el('div', { class: 'answer', lang: reply.language || null });
    if (reply.answer_html) {
      answer.innerHTML = reply.answer_html; // already sanitised by the server
      answer.querySelectorAll('a[href^="http"]').forEach((a) => { a.target = '_blank'; a.rel = 'noopener noreferrer'; });
    } else {
      answer.classList.add('plain');
      answer.textContent = reply.answer || '';
    }
    const bubble = el('div', { class: 'bubble' }, answer);
    const h = reply.handoff;
    if (h && h.message && h.message !== reply.answer) bubble.append(el('p', { class: 'handoff-note', text: h.message }));

    const cites = Array.isArray(reply.citations) ? reply.citations.filter(Boolean) : [];
    if (cites.length) {
      bubble.append(el('div', { class: 'sources' },
        el('p', { class: 'sources-title', text: 'Sources' }), el('ul', {}, ...cites.map(citationItem))));
    }

    const tools = el('div', { class: 'tools' });
    const note = el('span', { class: 'note', role: 'status' });
    const confirms = (Array.isArray(reply.actions) ? reply.actions : []).filter((a) => a && a.kind === 'confirm');
    for (const a of confirms) {
      tools.append(el('button', {
        type: 'button', class: `btn confirm ${a.id === 'tool_yes' ? 'primary' : ''}`,
        'data-value': a.id === 'tool_yes' ? 'yes' : 'no',
        onclick: (e) => sendConfirm(reply, a.value, a.id === 'tool_yes', e.currentTarget, note),
      }, a.label));
    }
    if (reply.id && reply.answered && !reply.plain && !confirms.length) {
      for (const [value, emoji, label] of [['up', '👍', 'Helpful'], ['down', '👎', 'Not helpful']]) {
        tools.append(el('button', {
          type: 'button', class: 'btn icon fb', 'aria-label': label, title: label, 'data-value': value,
          onclick: (e) => sendFeedback(reply, value, e.currentTarget, note),
        }, emoji));
      }
    }
    for (const a of Array.isArray(reply.actions) ? reply.actions : []) {
      if (a && a.kind === 'handoff') tools.append(handoffButton(a.label));
      if (a && a.kind === 'rating') {
        tools.append(el('button', {
          type: 'button', class: 'btn icon rate', 'aria-label': `Rate ${a.label} of 5`,
          'data-value': String(a.value).split(':').pop(),
          onclick: (e) => sendRating(reply, a.value, e.currentTarget, note),
        }, String(a.label)));
      }
    }
    if (tools.childElementCount) bubble.append(tools, note);
    markChosen(tools.querySelectorAll('[data-value]'), chosen);
    return el('div', { class: 'msg bot' }, bubble);
  }

  async function sendConfirm(shownReply, action, accepted, btn, note) {
    const group = btn.parentElement.querySelectorAll('.confirm');
    group.forEach((b) => { b.disabled = true; });
    try {
      const reply = await json(await api('/api/confirm', { conversation: conv, action, accepted, reply_id: shownReply.id }));
      markChosen(group, btn.dataset.value);
      put(replyBubble(reply), null, true);
    } catch (e) {
      note.classList.add('bad');
      note.textContent = messageOf(e);
    }
  }

  async function sendRating(shownReply, value, btn, note) {
    const group = btn.parentElement.querySelectorAll('.rate');
    group.forEach((b) => { b.disabled = true; });
    try {
      const reply = await json(await api('/api/rate', { conversation: conv, value, reply_id: shownReply.id }));
      markChosen(group, btn.dataset.value);
      put(replyBubble(reply), null, true);
    } catch (e) {
      note.classList.add('bad');
      note.textContent = messageOf(e);
    }
  }

  // ---------- while a person from the team has the conversation: hear what they write ----------
  // GET /api/stream (server-sent events) brings it as it is saved; if that fails, poll.
  function showTurns(data) {
    for (const t of turnsOf(data)) {
      lastSeq = Math.max(lastSeq, Number(t.seq) || 0);
      // the visitor's own lines and the replies they got are on screen already
      if (t.role === 'assistant' && t.reply?.id && !shown.has(t.reply.id) && t.reply.answer) {
        put(replyBubble(t.reply, t.chosen), null, true);
      }
    }
  }

  function poll() {
    const c = conv;
    if (polling === c) return;
    polling = c;
    if (typeof EventSource === 'undefined') { pollLoop(c); return; }
    const source = new EventSource(`/api/stream?conversation=${encodeURIComponent(c)}&after=${lastSeq}`);
    document.body.dataset.live = 'sse';
    const stop = () => { source.close(); delete document.body.dataset.live; if (polling === c) polling = null; };
    source.addEventListener('turns', (ev) => {
      if (polling !== c || conv !== c) { stop(); return; }
      let data = null;
      try { data = JSON.parse(ev.data); } catch { return; }
      showTurns(data);
      if (data?.owner === 'bot') stop();
    });
    source.addEventListener('error', () => {
      if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
      source.close();
      delete document.body.dataset.live;
      if (polling === c && conv === c) pollLoop(c); // the stream is refused: fall back to polling
    });
  }

  async function pollLoop(c) {
    document.body.dataset.live = 'poll';
    while (polling === c && conv === c) {
      await new Promise((done) => setTimeout(done, POLL_MS));
      try {
        const resp = await api(`/api/conversations/${encodeURIComponent(c)}?after=${lastSeq}`);
        if (!resp.ok || conv !== c) continue;
        const data = await json(resp);
        showTurns(data);
        if (data?.owner === 'bot') break;
      } catch { /* a network blip: try again at the next tick */ }
    }
    delete document.body.dataset.live;
    if (polling === c) polling = null;
  }

  // ---------- Server-Sent Events over fetch (POST, so no EventSource) ----------
  async function readSSE(resp, onEvent) {
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let type = 'message';
    let data = [];
    const dispatch = () => {
      if (data.length) onEvent(type, data.join('\n'));
      type = 'message';
      data = [];
    };
    const line = (l) => {
      if (l === '') return dispatch();
      if (l.startsWith(':')) return; // comment / keep-alive ping
      const i = l.indexOf(':');
      const field = i < 0 ? l : l.slice(0, i);
      let value = i < 0 ? '' : l.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') type = value || 'message';
      else if (field === 'data') data.push(value);
    };
    const feed = (final) => {
      const re = /\r\n|\r|\n/g;
      let start = 0;
      let m;
      while ((m = re.exec(buf))) {
        // A trailing "\r" may be the first half of a "\r\n" split across chunks: wait for more.
        if (!final && m[0] === '\r' && m.index === buf.length - 1) break;
        line(buf.slice(start, m.index));
        start = re.lastIndex;
      }
      buf = buf.slice(start);
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      feed(false);
    }
    buf += dec.decode();
    feed(true);
    if (buf) line(buf);
    dispatch(); // lenient about a missing final blank line
  }

  // ---------- actions ----------
  async function send(text) {
    const c = conv;
    const mine = { ctrl: new AbortController() };
    current = mine;
    setBusy(true);
    put(userBubble(text), null, true);
    let slot = put(typingBubble(), null, true);
    let stream = null; // text node of the plain-text streaming bubble
    let finished = false;
    const live = () => current === mine && conv === c;
    const fail = (message) => {
      finished = true;
      if (stream) { slot.classList.remove('streaming'); slot.removeAttribute('aria-busy'); slot = put(errorBubble(message)); }
      else slot = put(errorBubble(message), slot);
      if (!stream && !input.value) input.value = text; // let the user resend easily
    };
    try {
      const resp = await api('/api/chat', { conversation: c, text }, mine.ctrl.signal);
      if (!live()) return;
      if (!resp.ok) return fail(await errorMessage(resp));
      if (!(resp.headers.get('Content-Type') || '').includes('text/event-stream')) { // tolerate a plain JSON Reply
        const reply = await json(resp);
        if (live()) { finished = true; slot = put(replyBubble(reply), slot); }
        return;
      }
      await readSSE(resp, (event, raw) => {
        if (!live() || finished) return;
        let payload;
        try { payload = JSON.parse(raw); } catch { return fail(INVALID); }
        if (event === 'delta') {
          if (!stream) {
            stream = document.createTextNode('');
            slot = put(el('div', { class: 'msg bot streaming', 'aria-busy': 'true' },
              el('div', { class: 'bubble' }, el('div', { class: 'answer plain' }, stream))), slot);
          }
          const stick = nearBottom();
          stream.appendData(String(payload?.text ?? ''));
          if (stick) log.scrollTop = log.scrollHeight;
        } else if (event === 'reply') {
          finished = true;
          if (payload?.answer) slot = put(replyBubble(payload), slot);
          else { slot.remove(); poll(); } // relayed to the person who has the conversation
          if (payload?.handoff) poll();
        } else if (event === 'error') {
          fail(payload?.message);
        }
      });
      if (live() && !finished) fail('The answer was interrupted — please retry.');
    } catch (e) {
      if (e.name !== 'AbortError' && live()) fail(messageOf(e));
    } finally {
      if (current === mine) { current = null; setBusy(false); autosize(); updateCounter(); }
    }
  }

  async function handoff() {
    if (handoffPending) return;
    const c = conv;
    const toggle = (on) => {
      handoffPending = on;
      document.querySelectorAll('.handoff-btn').forEach((b) => { b.disabled = on; });
    };
    toggle(true);
    const slot = put(typingBubble(), null, true);
    try {
      const reply = await json(await api('/api/handoff', { conversation: c }));
      if (conv === c) put(replyBubble(reply), slot);
      if (conv === c && reply.handoff) poll();
    } catch (e) {
      if (conv === c) put(errorBubble(messageOf(e)), slot);
    } finally {
      toggle(false);
    }
  }

  const turnsOf = (data) => (Array.isArray(data?.turns) ? data.turns : [])
    .filter((t) => t && /^(user|assistant)$/.test(t.role));

  const bubbleOf = (t) => (t.role === 'user' ? userBubble(String(t.text ?? '')) : replyBubble(t.reply, t.chosen));

  // The conversation's bubbles come a page at a time, newest first: "Load earlier" fetches
  // the page before the first one shown.
  function earlierButton(c, before) {
    const btn = el('button', { type: 'button', class: 'btn earlier', text: 'Load earlier messages' });
    const box = el('div', { class: 'more' }, btn);
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      try {
        const data = await json(await api(`/api/conversations/${encodeURIComponent(c)}?before=${before}`));
        if (conv !== c) return;
        const turns = turnsOf(data);
        const height = log.scrollHeight;
        const top = log.scrollTop;
        box.replaceWith(...(data.more && turns.length ? [earlierButton(c, turns[0].seq)] : []), ...turns.map(bubbleOf));
        log.scrollTop = top + log.scrollHeight - height; // keep what the visitor was reading in place
      } catch (e) {
        btn.disabled = false;
        btn.textContent = `${messageOf(e)} Load earlier messages`;
      }
    });
    return box;
  }

  async function restore() {
    const c = conv;
    log.replaceChildren(el('p', { class: 'empty', text: 'Loading conversation…' }));
    try {
      const resp = await api(`/api/conversations/${encodeURIComponent(c)}`);
      const data = resp.status === 404 ? null : await json(resp);
      const turns = turnsOf(data);
      if (conv !== c) return;
      log.querySelector('.empty')?.remove();
      for (const t of turns) lastSeq = Math.max(lastSeq, Number(t.seq) || 0);
      const earlier = data?.more && turns[0]?.seq ? [earlierButton(c, turns[0].seq)] : [];
      // prepend: anything the user sent while history was loading stays after it
      log.prepend(...earlier, ...turns.map(bubbleOf));
      if (!log.childElementCount) showEmpty();
      log.scrollTop = log.scrollHeight;
      if (data?.owner && data.owner !== 'bot') poll();
    } catch (e) {
      if (conv === c) put(errorBubble(messageOf(e)));
    }
  }

  function newConversation() {
    if (current) { current.ctrl.abort(); current = null; }
    conv = store(newId());
    lastSeq = 0;
    showEmpty();
    input.value = '';
    setBusy(false);
    autosize();
    updateCounter();
  }

  // ---------- composer ----------
  function autosize() {
    input.style.height = 'auto';
    input.style.height = `${input.scrollHeight + input.offsetHeight - input.clientHeight}px`;
  }

  // Characters as the server counts them (code points: an emoji is one, not two).
  const length = (text) => text.length - (text.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g)?.length ?? 0);

  function updateCounter() {
    const n = length(input.value.trim());
    counter.hidden = n < NEAR_LIMIT;
    counter.textContent = counter.hidden ? '' : `${n.toLocaleString()} / ${MAX.toLocaleString()}`;
    counter.classList.toggle('bad', n > MAX);
    if (n <= MAX) showTooLong(0);
  }

  // A message over the limit is never cut: it stays in the box with the reason, to be shortened.
  function showTooLong(n) {
    tooLong.hidden = !n;
    tooLong.textContent = n ? `Your message is ${n.toLocaleString()} characters long; the limit is ${MAX.toLocaleString()}. Please shorten it before sending.` : '';
    if (n) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || current) return;
    if (length(text) > MAX) { showTooLong(length(text)); input.focus(); return; }
    input.value = '';
    autosize();
    updateCounter();
    send(text);
  });

  input.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' || e.shiftKey || e.isComposing) return;
    e.preventDefault();
    if (form.requestSubmit) form.requestSubmit(); else form.dispatchEvent(new Event('submit', { cancelable: true }));
  });
  input.addEventListener('input', () => { autosize(); updateCounter(); });
  $('#new-conv').addEventListener('click', (e) => { e.preventDefault(); newConversation(); });
  $('#human').addEventListener('click', handoff);

  if (fresh) showEmpty(); else restore();
  input.focus({ preventScroll: true });
})();
