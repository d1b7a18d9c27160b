/* Vitals dashboard: sign-in, hash routing (#/page/id?query) and live refresh. */
'use strict';

(function app(V) {
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let generation = 0;

  V.showError = (err) => {
    const page = $('page');
    const old = page.querySelector('[data-error]');
    if (old) old.remove();
    page.prepend(V.errorBox(err));
    V.setStatus(`error: ${err.message}`);
  };

  function parseRoute() {
    const raw = location.hash.replace(/^#\/?/, '') || 'endpoints';
    const [path, query] = raw.split('?');
    const parts = path.split('/').map(decodeURIComponent);
    const map = { endpoints: ['endpoints', 'endpoint'], tasks: ['tasks', 'task'], jobs: ['jobs'],
      metrics: ['metrics'], pipeline: ['pipeline'] };
    const names = map[parts[0]] || map.endpoints;
    const page = parts.length > 1 && names[1] ? names[1] : names[0];
    return { nav: map[parts[0]] ? parts[0] : 'endpoints', page, params: { id: parts.slice(1).join('/'), query: new URLSearchParams(query || '') } };
  }

  function showSignIn(message) {
    clearInterval(timer);
    $('page').hidden = true;
    $('signin').hidden = false;
    $('signin-error').textContent = message || '';
    $('who').replaceChildren();
    $('signin-key').focus();
  }

  async function signIn(key) {
    sessionStorage.setItem(V.KEY_STORE, key);
    try {
      V.session = await V.api('/ui/api/session');
    } catch (err) {
      sessionStorage.removeItem(V.KEY_STORE);
      V.session = null;
      showSignIn(err.status === 401 ? 'That key is not valid (or was revoked).' : err.message);
      return false;
    }
    $('who').replaceChildren(
      V.el('span', { id: 'who-tenant' }, `${V.session.tenant} · ${V.session.role}`),
      V.el('button', { id: 'signout', onclick: () => { sessionStorage.removeItem(V.KEY_STORE); V.session = null; showSignIn(); } }, 'Sign out'));
    return true;
  }

  async function render() {
    clearInterval(timer);
    const gen = (generation += 1);
    if (!V.session) {
      const key = V.key();
      if (!key || !(await signIn(key))) { if (!key) showSignIn(); return; }
    }
    $('signin').hidden = true;
    const page = $('page');
    page.hidden = false;
    page.replaceChildren();
    page.dataset.page = '';
    const route = parseRoute();
    document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.page === route.nav));
    let refresh = null;
    const tick = async () => {
      if (gen !== generation || !refresh) return;
      try {
        await refresh();
        if (gen !== generation) return;
        const old = page.querySelector(':scope > [data-error]');
        if (old) old.remove();
        page.dataset.page = route.page;
        page.dataset.loaded = String(Number(page.dataset.loaded || 0) + 1);
        V.setStatus(`updated ${new Date().toLocaleTimeString()} · refreshes every ${V.REFRESH_MS / 1000} s`);
      } catch (err) {
        if (gen !== generation) return;
        if (err.status === 401) { sessionStorage.removeItem(V.KEY_STORE); V.session = null; showSignIn('The key is no longer valid.'); return; }
        page.dataset.page = route.page;
        V.showError(err);
      }
    };
    try {
      refresh = await V.pages[route.page](page, route.params);
    } catch (err) {
      if (gen === generation) { page.dataset.page = route.page; V.showError(err); }
      return;
    }
    if (gen !== generation) return;
    if (!refresh) { page.dataset.page = route.page; page.dataset.loaded = '1'; return; }
    await tick();
    timer = setInterval(tick, V.REFRESH_MS);
  }


  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (await signIn($('signin-key').value.trim())) { $('signin-key').value = ''; render(); }
  });
  window.addEventListener('hashchange', render);
  V.start = render;
}(window.Vitals));

window.Vitals.start();
