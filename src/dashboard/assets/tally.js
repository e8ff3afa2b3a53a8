/* Tally browser tracker: <script src="https://tally.example/tally.js" async></script>
   Sends a page_view (page URL, referrer, an anonymous id kept in localStorage) on load and on
   every History API navigation, and custom events: tally('event', 'signup', { plan: 'pro' }).
   Browser, OS, device and country come from the request's headers and address on the server:
   the script sends nothing else about the visitor. No session id either: the server splits a
   visitor's events into visits by the gap between them (TALLY_SESSION_TIMEOUT_MIN).
   Options (data attributes on the script tag): data-endpoint (default: /v1/collect next to this
   script), data-user-id (else the anonymous id), data-auto="false" (no automatic page views).
   Calls: tally('event', type, properties), tally('page'), tally('identify', userId); also
   tally.track(type, properties), tally.page(), tally.identify(userId). Calls made before the
   script has loaded are replayed if the page defines the usual queue:
   window.tally = window.tally || function () { (tally.q = tally.q || []).push(arguments); }; */
(function (w, d) {
  'use strict';
  var s = d.currentScript;
  var queued = w.tally;
  if (!s || (queued && queued.track)) return;
  var n = navigator;
  var attr = function (k) {
    return s.getAttribute('data-' + k);
  };
  var endpoint = attr('endpoint') || new URL('/v1/collect', s.src).href;
  var dnt =
    /*HONOR_DNT*/ false && (n.doNotTrack == '1' || w.doNotTrack == '1' || n.globalPrivacyControl === true);
  var userId = attr('user-id');
  var anon, last;

  function id() {
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), function (b) {
      return (b + 256).toString(16).slice(1);
    }).join('');
  }
  // Storage may be disabled (privacy modes): the id then lives as long as the page.
  function anonId() {
    try {
      anon = localStorage.getItem('tally_uid') || anon;
      if (!anon) localStorage.setItem('tally_uid', (anon = id()));
    } catch (e) {
      anon = anon || id();
    }
    return 'anon-' + anon;
  }
  function send(type, props, referrer) {
    if (dnt) return false;
    var body = JSON.stringify({
      event_id: id(),
      type: String(type),
      user_id: userId || anonId(),
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
  // A navigation inside a single-page app names the page it came from as its referrer.
  function page() {
    var url = location.href;
    if (url === last) return false;
    var ref = last;
    last = url;
    return send('page_view', undefined, ref);
  }
  function identify(uid) {
    userId = uid ? String(uid) : null;
  }

  function tally(command, a, b) {
    if (command === 'event') return send(a, b);
    if (command === 'page') return page();
    if (command === 'identify') return identify(a);
  }
  tally.track = function (type, properties) {
    return send(type, properties);
  };
  tally.page = page;
  tally.identify = identify;
  w.tally = tally;
  // Replayed first, so that a queued identify names the user of the first page view.
  ((queued && queued.q) || []).forEach(function (args) {
    tally.apply(null, args);
  });
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
