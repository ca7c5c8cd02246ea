// tocsin's web UI: the pages read without this; it adds local times and live updates.
"use strict";

// Every <time datetime> in the browser's zone; the UTC instant stays on hover.
function localize(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) {
      t.textContent = d.toLocaleString(undefined, {
        year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
      });
    }
  }
}

// The Alerts page: its groups again after every change, over server-sent events.
function live() {
  const box = document.querySelector("[data-live]");
  if (!box || !window.EventSource) return;
  const source = new EventSource(box.getAttribute("data-live"));
  source.addEventListener("alerts", (e) => {
    box.innerHTML = e.data;
    localize(box);
    box.dataset.updated = String(Date.now());
  });
}

// The silence editor: the preview follows the matchers as they are typed.
function preview() {
  const form = document.getElementById("silence-editor");
  const out = document.getElementById("preview");
  if (!form || !out) return;
  let timer = null;
  const refresh = async () => {
    const params = new URLSearchParams();
    for (const name of ["matchers", "duration", "comment"]) {
      params.set(name, form.elements[name].value);
    }
    const r = await fetch("/silences/new?" + params, { credentials: "same-origin" });
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = doc.getElementById("preview");
    if (fresh) {
      out.innerHTML = fresh.innerHTML;
      localize(out);
    }
  };
  form.elements["matchers"].addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localize(document);
  live();
  preview();
});
