// The operator console (/admin): keeps the part of a page marked #live current.
// The page names its stream in <meta name="live">; on each change the server announces,
// the page is fetched again and its #live part swapped in (what an agent is typing, in
// the forms outside #live, stays). No inline script: the CSP forbids it.
(() => {
  'use strict';
  const stream = document.querySelector('meta[name="live"]')?.content;
  const live = document.getElementById('live');
  if (!stream || !live || !window.EventSource) return;
  let pending = null;

  async function refresh() {
    pending = null;
    try {
      const resp = await fetch(location.href, { headers: { Accept: 'text/html' }, credentials: 'same-origin' });
      if (!resp.ok) return;
      const fresh = new DOMParser().parseFromString(await resp.text(), 'text/html').getElementById('live');
      if (fresh) {
        live.innerHTML = fresh.innerHTML;
        live.dataset.refreshed = String(Number(live.dataset.refreshed || 0) + 1);
      }
    } catch { /* a network blip: the next change tries again */ }
  }

  const source = new EventSource(stream);
  source.addEventListener('change', () => { if (!pending) pending = setTimeout(refresh, 100); });
  source.addEventListener('open', () => { document.body.dataset.live = 'on'; });
})();
