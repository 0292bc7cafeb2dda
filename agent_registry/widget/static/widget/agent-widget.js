/* PLACEHOLDER — widget-js replaces this file with the real widget (issue 14).
 * The registry serves it at /widget/agent-widget.js (widget/views.py); the literal
 * __AGENT_REGISTRY_API_BASE__ is replaced by PUBLIC_BASE_URL when served. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (script) {
    script.setAttribute("data-agent-registry-api", "__AGENT_REGISTRY_API_BASE__");
  }
})();
