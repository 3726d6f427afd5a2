// kb dashboard: progressive enhancement with plain fetch(); every page works without it except drag and drop.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content;
  var TERMINAL = ["succeeded", "failed", "rag_limit_exceeded", "document_too_small"];

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  // --- confirmations -----------------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
    var bulk = event.target.closest("[data-confirm-delete]");
    if (bulk) {
      var form = bulk.form, action = form.querySelector('[name="action"]');
      var ticked = document.querySelectorAll('input[name="ids"][form="' + form.id + '"]:checked').length;
      if (action && action.value === "delete" && !window.confirm("Delete " + ticked + " item(s)?")) event.preventDefault();
    }
  });

  // --- index status cells: poll until every index is done ---------------------------------------------
  function renderIndexes(box, indexes) {
    var model = box.getAttribute("data-model");
    if (model) indexes = indexes.filter(function (i) { return i.model === model; });
    box.textContent = "";
    if (!indexes.length) { box.appendChild(el("span", { "class": "muted" }, "no index")); }
    var pending = false;
    indexes.forEach(function (i) {
      var line = el("div", { "class": "index" });
      line.appendChild(el("span", { "class": "badge st-" + i.status, title: i.model }, i.status));
      if (TERMINAL.indexOf(i.status) < 0) {
        pending = true;
        var bar = el("progress", { max: "100", "aria-label": "indexing progress" });
        bar.value = i.progress;
        line.appendChild(document.createTextNode(" "));
        line.appendChild(bar);
        line.appendChild(el("span", { "class": "muted" }, " " + Math.round(i.progress) + "%"));
      }
      if (i.error) line.appendChild(el("span", { "class": "error-text" }, i.error));
      box.appendChild(line);
    });
    if (pending) box.setAttribute("data-pending", "1"); else box.removeAttribute("data-pending");
    return pending;
  }

  var watched = {};  // document id -> callbacks(indexes)
  function watch(docId, callback) { (watched[docId] = watched[docId] || []).push(callback); }

  function pollIndexes() {
    document.querySelectorAll(".indexes[data-pending]").forEach(function (box) {
      var id = box.getAttribute("data-doc");
      if (!box._watched) { box._watched = true; watch(id, function (indexes) { return renderIndexes(box, indexes); }); }
    });
    var ids = Object.keys(watched);
    if (!ids.length) return setTimeout(pollIndexes, 1500);
    getJSON("/dashboard/documents/status?ids=" + encodeURIComponent(ids.slice(0, 100).join(","))).then(function (found) {
      ids.forEach(function (id) {
        var indexes = found[id];
        if (indexes === undefined) { delete watched[id]; return; }
        watched[id] = watched[id].filter(function (cb) { return cb(indexes); });
        if (!watched[id].length) delete watched[id];
      });
    }).catch(function () {}).then(function () { setTimeout(pollIndexes, 1000); });
  }

  // --- drag and drop upload, one request per file ---------------------------------------------------------
  function uploadFile(file, folderId, list) {
    var item = el("li");
    var name = el("span", { "class": "file" }, file.name);
    var bar = el("progress", { max: "100", "aria-label": "upload of " + file.name });
    bar.value = 0;
    var state = el("span", { "class": "state", role: "status" }, "uploading…");
    item.appendChild(name); item.appendChild(bar); item.appendChild(state);
    list.appendChild(item);
    var data = new FormData();
    data.append("file", file, file.name);
    if (folderId) data.append("parent_folder_id", folderId);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/dashboard/upload");
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) bar.value = 100 * e.loaded / e.total; };
    item.setAttribute("data-busy", "1");
    xhr.onerror = function () {
      state.className = "state error"; state.textContent = "network error: not uploaded"; uploadEnded(list, item);
    };
    xhr.onload = function () {
      var body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = { error: "unexpected answer (HTTP " + xhr.status + ")" }; }
      if (xhr.status !== 200) {
        state.className = "state error";
        state.textContent = body.error || ("failed (HTTP " + xhr.status + ")");
        bar.replaceWith(el("span"));
        uploadEnded(list, item);
        return;
      }
      bar.value = 0;
      bar.setAttribute("aria-label", "indexing of " + file.name);
      name.textContent = "";
      name.appendChild(el("a", { href: body.url }, body.name));
      state.textContent = "uploaded, indexing…";
      watch(body.id, function (indexes) {
        var first = indexes[0];
        if (!first) { state.textContent = "uploaded (no index)"; return false; }
        bar.value = first.progress;
        state.textContent = first.status + (first.error ? ": " + first.error : "");
        state.className = "state " + (first.status === "succeeded" ? "ok" : (TERMINAL.indexOf(first.status) >= 0 ? "error" : ""));
        if (TERMINAL.indexOf(first.status) >= 0) { bar.replaceWith(el("span")); uploadEnded(list, item, true); return false; }
        return true;
      });
    };
    xhr.send(data);
  }

  var added = 0;
  function uploadEnded(list, item, stored) {
    // Called once per file, when it is stored and indexed (or refused): offer the refreshed list at the end.
    item.removeAttribute("data-busy");
    if (stored) added += 1;
    if (!list.querySelector("li[data-busy]") && added && !document.getElementById("uploads-done")) {
      var note = el("p", { id: "uploads-done", role: "status" });
      note.appendChild(el("a", { href: window.location.href }, "Refresh the list to see the new documents"));
      list.after(note);
    }
  }

  function setUpDropzone() {
    var zone = document.getElementById("dropzone");
    if (!zone) return;
    var input = zone.querySelector('input[type="file"]'), list = document.getElementById("uploads");
    var folderId = zone.getAttribute("data-folder") || "";
    function send(files) { Array.prototype.forEach.call(files, function (f) { uploadFile(f, folderId, list); }); }
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) { if (e.dataTransfer && e.dataTransfer.files) send(e.dataTransfer.files); });
    input.addEventListener("change", function () { send(input.files); input.value = ""; });
  }

  // --- crawl counters ----------------------------------------------------------------------------
  function pollCrawls() {
    var rows = document.querySelectorAll("tr[data-crawl][data-pending]");
    if (!rows.length) return;
    var ids = Array.prototype.map.call(rows, function (r) { return r.getAttribute("data-crawl"); });
    getJSON("/dashboard/crawls/status?ids=" + encodeURIComponent(ids.join(","))).then(function (found) {
      rows.forEach(function (row) {
        var crawl = found[row.getAttribute("data-crawl")];
        if (!crawl) return;
        row.querySelectorAll("[data-field]").forEach(function (cell) {
          var field = cell.getAttribute("data-field");
          if (crawl[field] !== undefined && crawl[field] !== null) cell.textContent = crawl[field];
          if (field === "status") cell.className = "badge st-" + crawl.status;
        });
        if (!crawl.running) row.removeAttribute("data-pending");
      });
    }).catch(function () {}).then(function () { setTimeout(pollCrawls, 1000); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpDropzone();
    pollIndexes();
    pollCrawls();
  });
})();
