/*! Agent Registry chat widget. One tag, no dependencies, no build step: docs/widget.md */
(function () {
  "use strict";

  var doc = document;
  var LEGACY = "data-agent-registry-widget"; // tags pasted before widget keys: JSON
  var script =
    doc.currentScript || doc.querySelector("script[data-widget-key],script[" + LEGACY + "]");
  if (!script) return;
  var widgetKey = script.getAttribute("data-widget-key") || legacyKey();

  // Only the key of an old tag counts: everything else now comes from the session.
  function legacyKey() {
    try {
      var key = JSON.parse(script.getAttribute(LEGACY)).widgetKey;
      return typeof key === "string" ? key : "";
    } catch (e) {
      return "";
    }
  }
  // The registry fills in its PUBLIC_BASE_URL when it serves the file, so a copy on a
  // CDN (WIDGET_BASE_URL) still calls it; a tag may name another with data-api-base,
  // and the unfilled file (served as is) calls where it came from.
  var served = "__AGENT_REGISTRY_API_BASE__";
  var apiBase = (
    script.getAttribute("data-api-base") ||
    (served.indexOf("__AGENT_") === 0 ? "" : served) ||
    new URL(script.src, location.href).origin
  ).replace(/\/+$/, "");

  var MAX_KEPT = 60; // messages kept for the tab
  var RENEW_MARGIN_MS = 20000; // renew a token this long before it expires
  var TEXT = {
    open: "Open chat",
    close: "Close chat",
    message: "Message",
    send: "Send",
    sendLabel: "Send a message",
    placeholder: "Type a message\u2026",
    you: "You",
    rate_limited: "You are sending messages too quickly. Please wait {wait} and try again.",
    quota_exceeded: "This assistant has reached its usage limit for now. Please try again later.",
    agent_unavailable: "The assistant is unavailable right now. Please try again later.",
    busy: "The assistant is busy right now. Please try again in a moment.",
    timeout: "The assistant took too long to answer. Please try again.",
    origin_not_allowed: "This chat is not enabled on this website.",
    session: "This chat could not start. Please try again later.",
    expired: "Your chat session has expired. Reload the page to continue.",
    network: "The assistant cannot be reached. Check your connection and try again.",
    cut: "The reply was interrupted.",
    failed: "Something went wrong getting a reply. Please try again."
  };
  var CODE_TEXT = {
    rate_limited: "rate_limited",
    quota_exceeded: "quota_exceeded",
    tenant_quota_exceeded: "quota_exceeded",
    agent_unavailable: "agent_unavailable",
    agent_not_found: "agent_unavailable",
    payment_required: "agent_unavailable",
    forbidden: "agent_unavailable",
    concurrency_limited: "busy",
    limiter_unavailable: "busy",
    usage_unavailable: "busy",
    runtime_timeout: "timeout",
    origin_not_allowed: "origin_not_allowed",
    invalid_widget_key: "session",
    widget_disabled: "session"
  };

  // --- storage: the conversation for this tab; a visitor id for the rate limit ----------

  function storage(name) {
    try {
      var s = window[name];
      s.setItem("agw:probe", "1");
      s.removeItem("agw:probe");
      return s;
    } catch (e) {
      return null; // blocked (privacy mode, sandboxed frame): keep it in memory
    }
  }
  var tabStore = storage("sessionStorage");
  var visitorStore = storage("localStorage") || tabStore;
  var convKey = "agw:conversation:" + widgetKey;

  function randomId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    var out = "";
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] + 256).toString(16).slice(1);
    return out;
  }

  var visitorId = visitorStore && visitorStore.getItem("agw:visitor");
  if (!/^[\w-]{8,64}$/.test(visitorId || "")) {
    visitorId = randomId();
    if (visitorStore) visitorStore.setItem("agw:visitor", visitorId);
  }

  var conversation = { sessionId: null, open: false, messages: [] };
  try {
    var kept = JSON.parse((tabStore && tabStore.getItem(convKey)) || "{}");
    if (typeof kept.sessionId === "string") conversation.sessionId = kept.sessionId;
    conversation.open = kept.open === true;
    (Array.isArray(kept.messages) ? kept.messages : []).forEach(function (m) {
      if (m && (m.role === "user" || m.role === "agent") && typeof m.text === "string") {
        conversation.messages.push({ role: m.role, text: m.text });
      }
    });
  } catch (e) {
    // a damaged entry starts a new conversation
  }

  function persist() {
    if (!tabStore) return;
    conversation.messages = conversation.messages.slice(-MAX_KEPT);
    try {
      tabStore.setItem(convKey, JSON.stringify(conversation));
    } catch (e) {
      // storage full: the conversation still lives on the page
    }
  }

  // --- the server: a session token for this origin, then streamed invoke calls ---------

  var token = null;
  var expiresAt = 0;
  var config = null;

  function Failure(kind, status, code, retryAfter) {
    this.kind = kind; // "http" (invoke), "session", "network"
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  function httpFailure(response, kind) {
    return response
      .json()
      .catch(function () {
        return {};
      })
      .then(function (body) {
        var code = body && body.error && typeof body.error.code === "string" ? body.error.code : "";
        throw new Failure(kind, response.status, code, response.headers.get("Retry-After"));
      });
  }

  function startSession() {
    return fetch(apiBase + "/api/v1/widget/sessions", {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      // JSON as text/plain: a "simple" request, so no CORS preflight before it.
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      body: JSON.stringify({ widget_key: widgetKey, visitor_id: visitorId })
    }).then(
      function (response) {
        if (!response.ok) return httpFailure(response, "session");
        return response.json().then(function (body) {
          token = body.token;
          if (/^[\w-]{8,64}$/.test(body.visitor_id || "") && body.visitor_id !== visitorId) {
            visitorId = body.visitor_id;
            if (visitorStore) visitorStore.setItem("agw:visitor", visitorId);
          }
          expiresAt = Date.parse(body.expires_at) || 0;
          config = body.config || {};
          if (root) brand(); // drawn before the registry could be reached
          return config;
        });
      },
      function () {
        // An origin outside allowed_domains gets no CORS headers, so the browser hides
        // the 403 as a network error. If the registry answers a no-cors request, it is
        // up: the refusal was the origin's.
        return fetch(script.src, { mode: "no-cors", credentials: "omit" }).then(
          function () {
            throw new Failure("session", 403, "origin_not_allowed");
          },
          function () {
            throw new Failure("network", 0, "");
          }
        );
      }
    );
  }

  function post(input) {
    var body = { input: input, stream: true };
    if (conversation.sessionId) body.session_id = conversation.sessionId;
    return fetch(invokeUrl(), {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      headers: {
        "Content-Type": "application/json",
        Accept: "text/event-stream",
        Authorization: "Bearer " + token
      },
      body: JSON.stringify(body)
    }).then(
      function (response) {
        if (!response.ok) return httpFailure(response, "http");
        return response;
      },
      function () {
        throw new Failure("network", 0, "");
      }
    );
  }

  // An expired token is renewed silently, once: before the call when the clock says so,
  // or after the gateway refused it (401).
  function invoke(input) {
    var renewed = false;
    function renew() {
      renewed = true;
      return startSession();
    }
    var ready = !token || Date.now() > expiresAt - RENEW_MARGIN_MS ? renew() : Promise.resolve();
    return ready.then(function () {
      return post(input).catch(function (failure) {
        if (renewed || failure.status !== 401) throw failure;
        return renew().then(function () {
          return post(input);
        });
      });
    }).catch(function (failure) {
      // Refused again with a token just issued: say so, rather than loop.
      if (failure instanceof Failure && failure.kind === "http" && failure.status === 401) {
        failure.code = "expired";
      }
      throw failure;
    });
  }

  // Server-Sent Events read from a fetch stream: event: token / end / error.
  function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    function dispatch(block) {
      var name = "message";
      var data = [];
      block.split("\n").forEach(function (line) {
        var colon = line.indexOf(":");
        if (colon === 0) return; // a comment (keep-alive)
        var field = colon < 0 ? line : line.slice(0, colon);
        var value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      });
      if (!data.length) return;
      var payload;
      try {
        payload = JSON.parse(data.join("\n"));
      } catch (e) {
        return;
      }
      onEvent(name, payload);
    }
    function drain(final) {
      buffer = buffer.replace(/\r\n/g, "\n");
      var blocks = buffer.split("\n\n");
      buffer = final ? "" : blocks.pop();
      blocks.forEach(dispatch);
    }
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          buffer += decoder.decode();
          drain(true);
          return;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        drain(false);
        return pump();
      });
    }
    return pump();
  }

  // --- safe Markdown: DOM nodes and textContent only, never HTML from the agent --------

  function el(tag, attrs, children) {
    var node = doc.createElement(tag);
    for (var name in attrs || {}) node.setAttribute(name, attrs[name]);
    (children || []).forEach(function (child) {
      if (child != null) node.appendChild(typeof child === "string" ? doc.createTextNode(child) : child);
    });
    return node;
  }

  function safeHref(href) {
    try {
      var url = new URL(href); // relative or malformed: no link
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function link(text, href) {
    var safe = safeHref(href);
    if (!safe) return doc.createTextNode(text);
    var a = el("a", { href: safe, target: "_blank", rel: "noopener noreferrer nofollow" });
    a.textContent = text;
    return a;
  }

  // `code`, **bold**, *italic*, [text](url), and bare http(s) links.
  var INLINE =
    "`([^`\\n]+)`|\\*\\*(\\S(?:[^*\\n]*\\S)?)\\*\\*|\\*(\\S(?:[^*\\n]*\\S)?)\\*" +
    "|\\[([^\\]\\n]+)\\]\\(([^()\\s]+)\\)|(https?://[^\\s<>()]*[^\\s<>().,;:!?'\"])";

  function inline(text, into) {
    var pattern = new RegExp(INLINE, "g");
    var last = 0;
    var m;
    while ((m = pattern.exec(text))) {
      if (m.index > last) into.appendChild(doc.createTextNode(text.slice(last, m.index)));
      if (m[1] != null) into.appendChild(el("code", {}, [m[1]]));
      else if (m[2] != null) inline(m[2], into.appendChild(el("strong")));
      else if (m[3] != null) inline(m[3], into.appendChild(el("em")));
      else if (m[4] != null) into.appendChild(link(m[4], m[5]));
      else into.appendChild(link(m[6], m[6]));
      last = pattern.lastIndex;
    }
    if (last < text.length) into.appendChild(doc.createTextNode(text.slice(last)));
  }

  function markdown(text, into) {
    into.textContent = "";
    var lines = text.replace(/\r\n?/g, "\n").split("\n");
    var paragraph = null;
    var list = null;
    var listOrdered = false;
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i];
      if (/^\s*```/.test(line)) {
        var code = [];
        while (++i < lines.length && !/^\s*```/.test(lines[i])) code.push(lines[i]);
        into.appendChild(el("pre", {}, [el("code", {}, [code.join("\n")])]));
        paragraph = list = null;
        continue;
      }
      var item = /^\s*(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/.exec(line);
      if (item) {
        var ordered = !item[1];
        if (!list || listOrdered !== ordered) {
          list = into.appendChild(el(ordered ? "ol" : "ul"));
          listOrdered = ordered;
          if (ordered && item[2] !== "1") list.setAttribute("start", String(parseInt(item[2], 10)));
        }
        inline(item[3], list.appendChild(el("li")));
        paragraph = null;
      } else if (!line.trim()) {
        paragraph = list = null;
      } else {
        list = null;
        if (paragraph) paragraph.appendChild(el("br"));
        else paragraph = into.appendChild(el("p"));
        inline(line, paragraph);
      }
    }
  }

  // --- the view, inside a shadow root: the page's CSS does not reach it, ours stays in --

  var STYLES =
    ":host{all:initial!important}" +
    ".root{--agw-primary:#2563eb;--agw-on-primary:#fff;--agw-bg:#fff;--agw-text:#1f2937;" +
    "--agw-muted:#6b7280;--agw-agent:#f3f4f6;--agw-font:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;" +
    "font:14px/1.45 var(--agw-font);color:var(--agw-text);letter-spacing:normal;text-align:left;" +
    "direction:ltr;-webkit-font-smoothing:antialiased}" +
    ".root *,.root *::before,.root *::after{box-sizing:border-box}" +
    "[hidden]{display:none!important}" +
    "button,textarea{font:inherit;color:inherit;margin:0;letter-spacing:inherit}" +
    "button{cursor:pointer}" +
    ":focus-visible{outline:3px solid var(--agw-primary);outline-offset:2px}" +
    ".launcher{position:fixed;bottom:20px;z-index:2147483000;width:56px;height:56px;border:0;" +
    "border-radius:50%;padding:0;background:var(--agw-primary);color:var(--agw-on-primary);" +
    "box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center}" +
    ".launcher svg{width:26px;height:26px;fill:currentColor}" +
    ".panel{position:fixed;bottom:88px;z-index:2147483000;width:min(380px,calc(100vw - 32px));" +
    "height:min(560px,calc(100vh - 112px));display:flex;flex-direction:column;overflow:hidden;" +
    "background:var(--agw-bg);border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.25)}" +
    ".right .launcher,.right .panel{right:20px}.left .launcher,.left .panel{left:20px}" +
    ".inline .panel{position:relative;bottom:auto;width:100%;height:520px;box-shadow:none;" +
    "border:1px solid #e5e7eb}" +
    ".head{display:flex;align-items:center;gap:10px;padding:12px 14px;background:var(--agw-primary);" +
    "color:var(--agw-on-primary)}" +
    ".avatar{width:36px;height:36px;border-radius:50%;object-fit:cover;background:rgba(255,255,255,.25);flex:none}" +
    ".titles{flex:1;min-width:0}" +
    ".name{font-size:15px;font-weight:600;margin:0;line-height:1.3;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}" +
    ".tagline{font-size:12px;opacity:.9;margin:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}" +
    ".close{border:0;background:transparent;color:inherit;width:32px;height:32px;border-radius:6px;" +
    "font-size:22px;line-height:1;padding:0}" +
    ".log{flex:1;overflow-y:auto;padding:14px;display:flex;flex-direction:column;gap:10px}" +
    ".msg{max-width:85%;padding:8px 12px;border-radius:12px;overflow-wrap:anywhere;white-space:normal}" +
    ".msg p{margin:0 0 6px}.msg p:last-child{margin-bottom:0}" +
    ".msg ul,.msg ol{margin:4px 0;padding-left:20px}" +
    ".msg pre{margin:6px 0;padding:8px;background:rgba(0,0,0,.06);border-radius:6px;overflow-x:auto;white-space:pre}" +
    ".msg code{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}" +
    ".msg :not(pre)>code{background:rgba(0,0,0,.07);padding:1px 4px;border-radius:4px}" +
    ".msg a{color:inherit;text-decoration:underline}" +
    ".user{align-self:flex-end;background:var(--agw-primary);color:var(--agw-on-primary);white-space:pre-wrap}" +
    ".agent{align-self:flex-start;background:var(--agw-agent)}" +
    ".agent[aria-busy=true]:empty::after{content:'\\2026';color:var(--agw-muted)}" +
    ".notice{align-self:stretch;padding:8px 12px;border-radius:8px;background:#fef2f2;color:#991b1b;" +
    "border:1px solid #fecaca;font-size:13px}" +
    ".vh{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}" +
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid #e5e7eb;margin:0}" +
    "textarea{flex:1;resize:none;min-height:40px;max-height:120px;padding:9px 10px;border:1px solid #d1d5db;" +
    "border-radius:8px;background:#fff;color:#111827}" +
    ".send{border:0;border-radius:8px;padding:0 14px;background:var(--agw-primary);color:var(--agw-on-primary);font-weight:600}" +
    ".send[aria-disabled=true]{opacity:.55;cursor:default}" +
    "@media (max-width:480px){.root:not(.inline) .panel{left:0;right:0;bottom:0;width:100vw;height:100%;border-radius:0}}";

  var CHAT_ICON =
    "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z";

  function pick(source, names) {
    for (var i = 0; i < names.length; i++) {
      var value = source && source[names[i]];
      if (typeof value === "string" && value) return value;
    }
    return "";
  }

  // The session's public configuration (widget/services.py public_config).
  function settings() {
    var c = config || {};
    return {
      name: pick(c, ["name"]) || "Assistant",
      tagline: pick(c, ["tagline"]),
      welcome: pick(c, ["welcome_message"]),
      avatar: pick(c, ["avatar_url"]),
      position: pick(c, ["position"]) || "bottom-right",
      theme: c.theme && typeof c.theme === "object" ? c.theme : {}
    };
  }

  function invokeUrl() {
    var c = config || {};
    return (
      safeHref(pick(c, ["invoke_url"])) ||
      apiBase + "/api/v1/agents/" + encodeURIComponent(pick(c, ["agent_id"])) + "/invoke"
    );
  }

  // Theme values are checked by the browser's own CSS parser and set through the CSSOM,
  // so a value can never become more than the one property.
  var THEME = {
    primary_color: ["--agw-primary", "color"],
    on_primary_color: ["--agw-on-primary", "color"],
    background_color: ["--agw-bg", "color"],
    text_color: ["--agw-text", "color"],
    agent_bubble_color: ["--agw-agent", "color"]
  };

  function applyTheme(root, theme) {
    for (var key in THEME) {
      var value = theme[key];
      if (typeof value === "string" && value.length < 200 && CSS.supports(THEME[key][1], value)) {
        root.style.setProperty(THEME[key][0], value);
      }
    }
  }

  var host, shadow, root, launcher, panel, log, form, input, send, avatar, title, tagline;
  var inlineMode = false;
  var isOpen = false;
  var busy = false;
  var sessionProblem = null;

  function build() {
    var s = settings();
    inlineMode = s.position === "inline";
    host = el("agent-registry-widget");
    shadow = host.attachShadow({ mode: "open" });
    if (shadow.adoptedStyleSheets && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
      var sheet = new CSSStyleSheet(); // not subject to the page's style-src CSP
      sheet.replaceSync(STYLES);
      shadow.adoptedStyleSheets = [sheet];
    } else {
      shadow.appendChild(el("style", {}, [STYLES]));
    }
    var titleId = "agw-title";
    root = el("div", { class: "root" });
    launcher = el("button", {
      type: "button",
      class: "launcher",
      "aria-expanded": "false",
      "aria-controls": "agw-panel"
    });
    var svg = doc.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var path = doc.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", CHAT_ICON);
    svg.appendChild(path);
    launcher.appendChild(svg);
    avatar = el("img", { class: "avatar", alt: "", hidden: "" });
    title = el("h2", { class: "name", id: titleId });
    tagline = el("p", { class: "tagline" });
    var closeButton = el("button", { type: "button", class: "close", "aria-label": TEXT.close }, ["\u00d7"]);
    log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-labelledby": titleId, tabindex: "0" });
    input = el("textarea", { id: "agw-input", rows: "1", placeholder: TEXT.placeholder, maxlength: "8000" });
    send = el("button", { type: "submit", class: "send" }, [TEXT.send]);
    form = el("form", { "aria-label": TEXT.sendLabel }, [
      el("label", { class: "vh", for: "agw-input" }, [TEXT.message]),
      input,
      send
    ]);
    panel = el("div", { id: "agw-panel", class: "panel", "aria-labelledby": titleId }, [
      el("div", { class: "head" }, [avatar, el("div", { class: "titles" }, [title, tagline]), closeButton]),
      log,
      form
    ]);
    if (inlineMode) {
      panel.setAttribute("role", "region");
      closeButton.hidden = launcher.hidden = true;
    } else {
      panel.setAttribute("role", "dialog");
      panel.setAttribute("aria-modal", "true");
      panel.hidden = true;
    }
    root.appendChild(launcher);
    root.appendChild(panel);
    shadow.appendChild(root);

    launcher.addEventListener("click", function () {
      if (isOpen) close();
      else open();
    });
    closeButton.addEventListener("click", close);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submit();
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      }
    });
    input.addEventListener("input", grow);
    shadow.addEventListener("keydown", trapKeys);

    brand();
    conversation.messages.forEach(function (m) {
      addMessage(m.role, m.text);
    });

    var anchor = script.parentNode;
    if (inlineMode && anchor && anchor !== doc.head) anchor.insertBefore(host, script.nextSibling);
    else doc.body.appendChild(host);
    if (inlineMode || conversation.open) open(true);
  }

  function brand() {
    var s = settings();
    root.className = "root " + (inlineMode ? "inline" : s.position === "bottom-left" ? "left" : "right");
    applyTheme(root, s.theme || {});
    title.textContent = s.name;
    tagline.textContent = s.tagline;
    tagline.hidden = !s.tagline;
    launcher.setAttribute("aria-label", TEXT.open + " with " + s.name);
    var src = s.avatar && safeHref(s.avatar);
    if (src) avatar.src = src;
    avatar.hidden = !src;
    var welcome = log.querySelector(".welcome");
    if (s.welcome && !welcome) {
      welcome = el("div", { class: "msg agent welcome" });
      log.insertBefore(welcome, log.firstChild);
    }
    if (welcome) markdown(s.welcome, welcome);
  }

  function grow() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function addMessage(role, text) {
    var node;
    if (role === "user") {
      node = el("div", { class: "msg user" }, [el("span", { class: "vh" }, [TEXT.you + ": "]), text]);
    } else {
      node = el("div", { class: "msg agent" });
      markdown(text, node);
    }
    log.appendChild(node);
    scrollDown();
    return node;
  }

  function notice(text) {
    var node = el("div", { class: "notice", role: "alert" }, [text]);
    log.appendChild(node);
    scrollDown();
    return node;
  }

  function explain(failure) {
    if (!(failure instanceof Failure)) return TEXT.failed;
    if (failure.kind === "network") return TEXT.network;
    if (failure.code === "expired") return TEXT.expired;
    var key = CODE_TEXT[failure.code];
    if (key === "rate_limited") {
      var seconds = parseInt(failure.retryAfter, 10);
      var wait = seconds > 0 ? seconds + (seconds === 1 ? " second" : " seconds") : "a moment";
      return TEXT.rate_limited.replace("{wait}", wait);
    }
    if (key) return TEXT[key];
    if (failure.status === 429) return TEXT.quota_exceeded;
    return failure.kind === "session" ? TEXT.session : TEXT.failed;
  }

  function setBusy(value) {
    busy = value;
    send.setAttribute("aria-disabled", value ? "true" : "false");
  }

  function submit() {
    var text = input.value.trim();
    if (!text || busy) return;
    if (sessionProblem && sessionProblem.code === "origin_not_allowed") {
      notice(explain(sessionProblem));
      return;
    }
    input.value = "";
    grow();
    addMessage("user", text);
    conversation.messages.push({ role: "user", text: text });
    persist();
    setBusy(true);
    var reply = el("div", { class: "msg agent", "aria-busy": "true" });
    var output = "";
    var settled = false;
    log.appendChild(reply);
    scrollDown();

    function finish(failure) {
      reply.setAttribute("aria-busy", "false");
      if (output) {
        conversation.messages.push({ role: "agent", text: output });
        persist();
      } else {
        reply.remove();
      }
      if (failure) notice(failure === true ? TEXT.cut : explain(failure));
      setBusy(false);
    }

    invoke(text)
      .then(function (response) {
        sessionProblem = null;
        return readEvents(response, function (name, data) {
          if (settled) return;
          if (name === "token" && data && typeof data.text === "string") {
            var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
            output += data.text;
            markdown(output, reply);
            if (atBottom) scrollDown();
          } else if (name === "end" && data) {
            settled = true;
            if (typeof data.output === "string") output = data.output;
            if (typeof data.session_id === "string") conversation.sessionId = data.session_id;
            markdown(output, reply);
            finish(null);
          } else if (name === "error") {
            settled = true;
            var code = data && data.error && data.error.code;
            finish(new Failure("http", 0, typeof code === "string" ? code : ""));
          }
        }).then(function () {
          if (!settled) {
            settled = true;
            finish(true);
          }
        });
      })
      .catch(function (failure) {
        if (settled) return;
        settled = true;
        if (failure instanceof Failure && failure.code === "origin_not_allowed") sessionProblem = failure;
        finish(failure instanceof Failure ? failure : output ? true : new Failure("network", 0, ""));
      });
  }

  // --- open, close, and keyboard: Tab stays in the open panel, Escape closes it --------

  function open(quiet) {
    isOpen = true;
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    if (!inlineMode) {
      conversation.open = true;
      persist();
    }
    scrollDown();
    if (!quiet) input.focus();
  }

  function close() {
    if (inlineMode) return;
    isOpen = false;
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    conversation.open = false;
    persist();
    launcher.focus();
  }

  function focusable() {
    var nodes = panel.querySelectorAll("a[href],button,textarea,[tabindex]:not([tabindex='-1'])");
    return Array.prototype.filter.call(nodes, function (node) {
      return !node.disabled && node.getClientRects().length > 0;
    });
  }

  function trapKeys(event) {
    if (!isOpen || inlineMode) return;
    if (event.key === "Escape") {
      event.preventDefault();
      close();
      return;
    }
    if (event.key !== "Tab") return;
    var nodes = focusable();
    if (!nodes.length) return;
    var first = nodes[0];
    var last = nodes[nodes.length - 1];
    var active = shadow.activeElement;
    var inside = active && panel.contains(active);
    if (event.shiftKey && (active === first || !inside)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (active === last || !inside)) {
      event.preventDefault();
      first.focus();
    }
  }

  // --- start: render at once with what we know, brand it when the session answers -----

  function start() {
    if (!widgetKey) {
      console.warn("Agent widget: the script tag has no data-widget-key.");
      return;
    }
    config = null;
    var session = startSession();
    session.then(
      function () {
        build();
      },
      function (failure) {
        sessionProblem = failure;
        if (failure.code === "origin_not_allowed") {
          console.warn(
            "Agent widget: " + location.origin + " is not among the allowed domains of this widget key."
          );
        }
        build();
        notice(failure instanceof Failure ? explain(failure) : TEXT.session);
      }
    );
  }

  if (doc.body) start();
  else doc.addEventListener("DOMContentLoaded", start);
})();
