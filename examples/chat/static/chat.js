// chat.js: the chat page. It talks to the server with the simplerpc
// JavaScript client (clients/js, served at /js/simplerpc.js); the opcodes
// and JSON shapes are those of protocol.go (see README.md).
import { Client } from '/js/simplerpc.js';

const op = {
  hello: 10, join: 11, leave: 12, say: 13, members: 14, online: 15, // calls
  message: 20, joined: 21, left: 22, presence: 23, // frames from the server
};

const $ = (id) => document.getElementById(id);
const state = {
  me: '', // the name the server gave us; '' before hello
  current: '', // the room shown
  rooms: new Map(), // name -> { members: [], lines: [], unread: 0 }
  online: [],
};

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  e.append(...children);
  return e;
}

function setStatus(s) {
  $('status').textContent = s;
  $('status').dataset.state = s;
}

// failure shows a typed failure (an RPCError's reason and message).
function failure(what, err) {
  const li = el('li', { className: 'failure' },
    el('strong', { textContent: err.reason ?? 'Error' }), ` ${err.message} `,
    el('span', { className: 'what', textContent: `(${what})` }),
    el('button', { type: 'button', textContent: '×', title: 'dismiss', onclick: () => li.remove() }));
  li.dataset.reason = err.reason ?? 'Error';
  $('failures').prepend(li);
  while ($('failures').children.length > 4) $('failures').lastChild.remove();
}

function room(name) {
  if (!state.rooms.has(name)) state.rooms.set(name, { members: [], lines: [], unread: 0 });
  return state.rooms.get(name);
}

function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

// hue gives each name a colour of its own (FNV-1a of the name).
function hue(name) {
  let h = 0x811c9dc5;
  for (const c of name) h = Math.imul(h ^ c.codePointAt(0), 0x01000193) >>> 0;
  return h % 360;
}

function render() {
  $('me').textContent = state.me ? `you are ${state.me}` : '';
  $('roomname').textContent = state.current || '—';
  const cur = state.rooms.get(state.current);
  $('title').textContent = cur ? `# ${state.current}` : 'no room';
  $('count').textContent = cur ? `${cur.members.length} ${cur.members.length === 1 ? 'member' : 'members'}` : 'join a room to talk';
  $('rooms').replaceChildren(...[...state.rooms].map(([name, r]) => {
    const li = el('li', { className: name === state.current ? 'current' : '' },
      el('span', { textContent: `# ${name}` }));
    if (r.unread) li.append(el('span', { className: 'badge', textContent: String(r.unread) }));
    li.onclick = () => { state.current = name; r.unread = 0; render(); };
    return li;
  }));
  const r = state.rooms.get(state.current);
  $('members').replaceChildren(...(r?.members ?? []).map((m) => person(m)));
  $('online').replaceChildren(...state.online.map((m) => person(m)));
  const box = $('messages');
  box.replaceChildren(...(r?.lines ?? []).map(line));
  box.scrollTop = box.scrollHeight;
  $('leave').disabled = !r;
}

function person(name) {
  const li = el('li', { textContent: name, className: name === state.me ? 'self' : '' });
  li.style.setProperty('--hue', hue(name));
  return li;
}

function line(m) {
  if (m.event) return el('li', { className: 'event', textContent: m.event });
  const li = el('li', { className: m.from === state.me ? 'msg own' : 'msg' },
    el('span', { className: 'from', textContent: m.from }),
    el('span', { className: 'text', textContent: m.text }),
    el('time', { textContent: time(m.at) }));
  li.style.setProperty('--hue', hue(m.from));
  return li;
}

function append(name, entry) {
  const r = room(name);
  r.lines.push(entry);
  if (r.lines.length > 500) r.lines.shift();
  if (name !== state.current && !entry.event) r.unread++;
  render();
}

const cfg = await (await fetch('/config.json')).json();
const url = `ws://${location.hostname}:${cfg.ws_port}${cfg.ws_path}`;

const rpc = new Client(url, {
  onOpen: () => {
    setStatus('connected');
    $('hello').disabled = false;
    if (state.me) rejoin(); // a reconnection: the server forgot us
  },
  onClose: () => setStatus('reconnecting'),
});

rpc.on(op.message, (m) => append(m.room, m));
rpc.on(op.joined, (m) => {
  room(m.room).members = m.members;
  if (m.name !== state.me) append(m.room, { event: `${m.name} joined` });
  else render();
});
rpc.on(op.left, (m) => {
  if (!state.rooms.has(m.room)) return;
  room(m.room).members = m.members;
  append(m.room, { event: `${m.name} left` });
});
rpc.on(op.presence, (m) => { state.online = m.names; render(); });

async function join(name) {
  const r = await rpc.call(op.join, { room: name });
  room(r.room).members = r.members;
  state.current = r.room;
  room(r.room).unread = 0;
  render();
}

async function rejoin() {
  const rooms = [...state.rooms.keys()];
  try {
    const r = await rpc.call(op.hello, { name: state.me });
    state.online = r.online;
    for (const name of rooms) await join(name);
  } catch (err) {
    failure('reconnecting', err);
  }
}

$('login').onsubmit = async (ev) => {
  ev.preventDefault();
  try {
    const r = await rpc.call(op.hello, { name: $('name').value });
    state.me = r.name;
    state.online = r.online;
    $('login').hidden = true;
    $('chat').hidden = false;
    render();
  } catch (err) {
    failure('hello', err);
    return;
  }
  const first = $('room').value.trim();
  if (first) await join(first).catch((err) => failure(`join ${first}`, err));
  $('text').focus();
};

$('join').onsubmit = async (ev) => {
  ev.preventDefault();
  const name = $('newroom').value;
  try {
    await join(name);
    $('newroom').value = '';
  } catch (err) {
    failure('join', err);
  }
};

$('compose').onsubmit = async (ev) => {
  ev.preventDefault();
  try {
    await rpc.call(op.say, { room: state.current, text: $('text').value });
    $('text').value = '';
  } catch (err) {
    failure(`say in ${state.current || 'no room'}`, err);
  }
};

$('leave').onclick = async () => {
  const name = state.current;
  try {
    await rpc.call(op.leave, { room: name });
    state.rooms.delete(name);
    state.current = state.rooms.keys().next().value ?? '';
    render();
  } catch (err) {
    failure(`leave ${name}`, err);
  }
};
