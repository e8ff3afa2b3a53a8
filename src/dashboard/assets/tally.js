/* Tally browser tracker: <script src="https://tally.example/tally.js" async></script>
   Options (data attributes on the script tag): data-endpoint (default: /v1/collect next to this
   script), data-user-id (else an anonymous id kept in localStorage), data-auto="false" (no
   automatic page views). API: tally.track(type, properties), tally.identify(userId), tally.page(). */
(function (w, d) {
  'use strict';
  var s = d.currentScript;
  if (!s || (w.tally && w.tally.track)) return;
  var n = navigator;
  var attr = function (k) {
    return s.getAttribute('data-' + k);
  };
  var endpoint = attr('endpoint') || new URL('/v1/collect', s.src).href;
  var dnt =
    /*HONOR_DNT*/ false && (n.doNotTrack == '1' || w.doNotTrack == '1' || n.globalPrivacyControl === true);
  var userId = attr('user-id');
  var last;

  function id() {
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), function (b) {
      return (b + 256).toString(16).slice(1);
    }).join('');
  }
  // Storage may be disabled (privacy modes): fall back to an id that lives as long as the page.
  function kept(store, key) {
    try {
      var v = store.getItem(key);
      if (!v) store.setItem(key, (v = id()));
      return v;
    } catch (e) {
      return (kept[key] = kept[key] || id());
    }
  }
  function send(type, props, referrer) {
    if (dnt) return false;
    var body = JSON.stringify({
      event_id: id(),
      type: String(type),
      user_id: userId || 'anon-' + kept(w.localStorage, 'tally_uid'),
      session_id: kept(w.sessionStorage, 'tally_sid'),
      page_url: location.href,
      referrer: referrer || d.referrer || undefined,
      properties: props && typeof props == 'object' ? props : undefined,
    });
    // text/plain keeps the beacon a "simple" cross-origin request: no preflight needed.
    if (n.sendBeacon && n.sendBeacon(endpoint, body)) return true;
    fetch(endpoint, {
      method: 'POST',
      body: body,
      keepalive: true,
      headers: { 'content-type': 'text/plain' },
    }).catch(function () {});
    return true;
  }
  function page() {
    var url = location.href;
    if (url === last) return false;
    var ref = last;
    last = url;
    return send('page_view', undefined, ref);
  }

  w.tally = {
    track: function (type, properties) {
      return send(type, properties);
    },
    page: page,
    identify: function (uid) {
      userId = uid ? String(uid) : null;
    },
  };
  if (attr('auto') === 'false') return;
  ['pushState', 'replaceState'].forEach(function (m) {
    var orig = history[m];
    history[m] = function () {
      var r = orig.apply(this, arguments);
      page();
      return r;
    };
  });
  w.addEventListener('popstate', page);
  page();
})(window, document);
