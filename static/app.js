// rmprune dashboard: drag-and-drop upload with progress, confirmations, the
// live preview ratio label, and live sweep updates over server-sent events.
(function () {
  "use strict";

  // Upload: drag and drop onto the drop zone, or choose a file; sent with
  // XHR for a progress bar, falling back to a plain form post.
  function initUpload() {
    var form = document.getElementById("upload");
    if (!form) return;
    var input = document.getElementById("file");
    var errBox = document.getElementById("upload-error");
    var bar = form.querySelector(".upload-progress");
    var max = parseInt(form.dataset.max || "0", 10);
    function showError(msg) { errBox.textContent = msg; errBox.hidden = false; }
    function send(file) {
      if (max && file.size > max) { showError(file.name + ": larger than the upload limit"); return; }
      errBox.hidden = true;
      var fd = new FormData();
      fd.append("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/models");
      bar.hidden = false;
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) bar.firstElementChild.style.width = (100 * e.loaded / e.total) + "%";
      };
      xhr.onload = function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) {}
        if (xhr.status === 201 || xhr.status === 200) { window.location = "/models/" + body.id; return; }
        bar.hidden = true;
        showError(body.error || ("upload failed: HTTP " + xhr.status));
      };
      xhr.onerror = function () { bar.hidden = true; showError("upload failed: network error"); };
      xhr.send(fd);
    }
    ["dragenter", "dragover"].forEach(function (t) {
      form.addEventListener(t, function (e) { e.preventDefault(); form.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      form.addEventListener(t, function (e) { e.preventDefault(); form.classList.remove("over"); });
    });
    form.addEventListener("drop", function (e) {
      if (e.dataTransfer && e.dataTransfer.files.length) send(e.dataTransfer.files[0]);
    });
    input.addEventListener("change", function () { if (input.files.length) send(input.files[0]); });
    form.addEventListener("submit", function (e) {
      if (input.files.length) { e.preventDefault(); send(input.files[0]); }
    });
  }

  function initConfirm() {
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (e) { if (!window.confirm(f.dataset.confirm)) e.preventDefault(); });
    });
  }

  function initPreview() {
    var r = document.getElementById("preview"), out = document.getElementById("preview-out");
    if (!r || !out) return;
    r.addEventListener("input", function () { out.textContent = r.value; });
  }

  // Live sweep page: progress from SSE; new points refresh the chart and table.
  function initSweep() {
    var card = document.getElementById("status-card");
    if (!card || !window.EventSource) return;
    var id = card.dataset.sweep;
    var st = card.dataset.status;
    if (st !== "queued" && st !== "running" && !card.dataset.remeasure) return;
    var bar = card.querySelector(".progress .bar"), prog = card.querySelector(".progress");
    var pct = document.getElementById("pct"), msg = document.getElementById("message");
    var statusEl = document.getElementById("status");
    var pending = null;
    function refresh() {
      if (pending) return;
      pending = setTimeout(function () {
        pending = null;
        var live = document.getElementById("live");
        if (live && window.htmx) htmx.trigger(live, "refresh");
      }, 250);
    }
    var es = new EventSource("/api/sweeps/" + id + "/events");
    var lastPoints = -1;
    es.addEventListener("progress", function (e) {
      var d = JSON.parse(e.data);
      // During a latency re-measure the bar shows its progress.
      var p = d.remeasure ? (d.remeasure_progress || 0) : d.progress;
      bar.style.width = (100 * p).toFixed(1) + "%";
      prog.dataset.status = d.remeasure ? "running" : d.status;
      pct.textContent = (100 * p).toFixed(1) + "%";
      if (d.message) msg.textContent = d.message;
      statusEl.innerHTML = '<span class="badge st-' + d.status + '">' + d.status + "</span>";
      card.dataset.status = d.status;
      if (lastPoints >= 0 && d.points !== lastPoints) refresh();
      lastPoints = d.points;
    });
    es.addEventListener("point", refresh);
    es.addEventListener("end", function (e) {
      es.close();
      var d = JSON.parse(e.data);
      card.dataset.status = d.status;
      // Reload so the buttons and the final chart match the end state.
      setTimeout(function () { window.location.reload(); }, 300);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initUpload();
    initConfirm();
    initPreview();
    initSweep();
  });
})();
