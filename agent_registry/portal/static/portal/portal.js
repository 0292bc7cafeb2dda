// The portal's own behaviour: Copy buttons, charts from json_script data, the live
// widget preview. Everything works without it except copying and drawing charts.
(function () {
  "use strict";

  function copyButtons(root) {
    root.querySelectorAll("[data-copy-target]").forEach(function (button) {
      if (button.dataset.bound) return;
      button.dataset.bound = "1";
      button.addEventListener("click", function () {
        var source = document.getElementById(button.dataset.copyTarget);
        var text = source.value !== undefined ? source.value : source.textContent;
        var done = function () {
          var status = document.getElementById(button.dataset.copyTarget + "-status");
          if (status) status.textContent = "Copied to the clipboard.";
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { source.select(); done(); });
        } else {
          source.select();
          document.execCommand("copy");
          done();
        }
      });
    });
  }

  function charts(root) {
    if (typeof Chart === "undefined") return;
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.bound) return;
      canvas.dataset.bound = "1";
      var data = JSON.parse(document.getElementById(canvas.dataset.chart).textContent);
      new Chart(canvas, {
        type: canvas.dataset.chartType || "bar",
        data: { labels: data.labels, datasets: data.datasets },
        options: {
          responsive: true, maintainAspectRatio: false, animation: false,
          scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } }
        }
      });
    });
  }

  function widgetPreview(root) {
    var preview = root.querySelector("[data-widget-preview]");
    if (!preview) return;
    var form = preview.closest("section").querySelector("form");
    var update = function () {
      var get = function (name) { var f = form.elements[name]; return f ? f.value : ""; };
      preview.querySelector("[data-preview=name]").textContent = get("branding_name") || preview.dataset.defaultName;
      preview.querySelector("[data-preview=welcome]").textContent = get("branding_welcome_message") || "Hi! How can I help you?";
      preview.style.setProperty("--preview-color", get("primary_color") || "#1565c0");
      var avatar = preview.querySelector("[data-preview=avatar]");
      var url = get("widget_avatar_url");
      avatar.hidden = !url;
      if (url) avatar.src = url;
    };
    form.addEventListener("input", update);
    update();
  }

  // A posted form shows that it is working until the next page arrives (an upload of a
  // large document or flow export takes a moment): the button gets Pico's spinner
  // (aria-busy) and a second press is ignored, so nothing is sent twice.
  function busyForms(root) {
    root.querySelectorAll("form[method=post]").forEach(function (form) {
      if (form.dataset.busyBound) return;
      form.dataset.busyBound = "1";
      form.addEventListener("submit", function (event) {
        if (form.dataset.sent) { event.preventDefault(); return; }
        form.dataset.sent = "1";
        var button = event.submitter || form.querySelector("button[type=submit]");
        if (!button) return;
        button.setAttribute("aria-busy", "true");
        if (form.enctype === "multipart/form-data") {
          button.dataset.label = button.textContent;
          button.textContent = "Uploading…";
        }
      });
    });
  }

  // Back (bfcache) to a page whose form was sent: it may be sent again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-sent]").forEach(function (form) {
      delete form.dataset.sent;
      form.querySelectorAll("[aria-busy]").forEach(function (b) {
        b.removeAttribute("aria-busy");
        if (b.dataset.label) b.textContent = b.dataset.label;
      });
    });
  });

  function bind(root) { copyButtons(root); charts(root); widgetPreview(root); busyForms(root); }
  document.addEventListener("DOMContentLoaded", function () { bind(document); });
  document.addEventListener("htmx:afterSwap", function (event) { bind(event.target); });
})();
