// The console's small helpers: show Unix times as UTC timestamps. No inline script (CSP).
"use strict";
document.querySelectorAll("[data-unix]").forEach((el) => {
  const t = Number(el.dataset.unix);
  if (Number.isFinite(t) && t > 0) {
    el.textContent = new Date(t * 1000).toISOString().replace(".000Z", "Z");
    el.title = String(t);
  }
});
