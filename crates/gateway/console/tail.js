// The live tail of a function's logs: `button#tail-toggle` (aria-pressed) opens an EventSource
// on `/gust/v1/logs/stream?function=NAME` (the session cookie goes with it; EventSource
// reconnects by itself and resumes after the last `id:`), `ol#tail-lines` keeps the newest 500
// lines and follows the bottom unless the operator scrolled up. `stop()` closes the stream:
// the page calls it when it is left.

import { h } from './dom.js';
import { api } from './api.js';

const MAX_LINES = 500;
const timeFmt = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3,
});

export function liveTail(functionName) {
  const button = h('button', { id: 'tail-toggle', type: 'button', 'aria-pressed': 'false', 'aria-controls': 'tail-lines' },
    'Start live tail');
  const state = h('span', { class: 'tail-state muted', role: 'status' }, 'Stopped');
  const lines = h('ol', { id: 'tail-lines', class: 'tail', 'aria-label': `Live log lines of ${functionName}`, tabindex: '0' });
  const empty = h('p', { class: 'notice empty tail-empty' }, 'No lines yet. Start the tail, then call the function.');
  let source = null;

  function start() {
    stop();
    source = new EventSource(`/gust/v1/logs/stream?function=${encodeURIComponent(functionName)}`);
    button.setAttribute('aria-pressed', 'true');
    button.textContent = 'Stop live tail';
    state.textContent = 'Connecting…';
    source.onopen = () => { state.textContent = 'Live: new lines appear below'; };
    source.onmessage = (e) => {
      let line;
      try {
        line = JSON.parse(e.data);
      } catch {
        line = { line: e.data, stream: 'stdout', ts_ms: Date.now(), request_id: null };
      }
      add(line);
    };
    source.onerror = () => {
      if (!source) return;
      if (source.readyState === EventSource.CLOSED) {
        stop('Stopped: the stream was refused or closed');
        // The stream cannot tell why; an ordinary call does (a 401 goes to the login page).
        api('/gust/v1/logs', { query: { function: functionName, limit: 1 }, quiet: true }).catch(() => {});
      } else {
        state.textContent = 'Reconnecting…';
      }
    };
  }

  function stop(why = 'Stopped') {
    if (source) source.close();
    source = null;
    button.setAttribute('aria-pressed', 'false');
    button.textContent = 'Start live tail';
    state.textContent = why;
  }

  function add(l) {
    const atBottom = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 8;
    empty.hidden = true;
    lines.append(h('li', { class: l.stream === 'stderr' ? 'stderr' : null },
      h('time', { datetime: new Date(l.ts_ms).toISOString() }, timeFmt.format(new Date(l.ts_ms))), ' ',
      l.request_id ? h('span', { class: 'rid', title: l.request_id }, l.request_id.slice(0, 8)) : h('span', { class: 'rid' }, '—'), ' ',
      l.stream === 'stderr' ? h('span', { class: 'badge bad' }, 'stderr') : null, l.stream === 'stderr' ? ' ' : null,
      h('span', { class: 'text' }, l.line)));
    while (lines.childElementCount > MAX_LINES) lines.firstElementChild.remove();
    if (atBottom) lines.scrollTop = lines.scrollHeight;
  }

  button.addEventListener('click', () => (source ? stop() : start()));
  const el = h('div', { class: 'tail-box' }, h('div', { class: 'toolbar' }, button, state), empty, lines);
  return { el, stop };
}
