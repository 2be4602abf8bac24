// curate report: draw the charts, fill thumbnails, page the galleries. Everything is in this file.
(function () {
  "use strict";
  const specs = JSON.parse(document.getElementById("chart-specs").textContent);
  const thumbs = JSON.parse(document.getElementById("thumbs").textContent);

  function fill(el) {
    el.querySelectorAll("img[data-t]:not([src])").forEach(function (img) {
      const uri = thumbs[img.getAttribute("data-t")];
      if (!uri) return;
      img.onload = function () { if (img.naturalWidth < 64 && img.naturalHeight < 64) img.setAttribute("data-small", ""); };
      img.src = uri;
    });
  }

  function pageable(container, items, size, pager) {
    const pages = Math.max(1, Math.ceil(items.length / size));
    function show(p) {
      items.forEach(function (it, i) { it.hidden = Math.floor(i / size) !== p; });
      items.slice(p * size, (p + 1) * size).forEach(fill);
      pager.querySelectorAll("button[data-p]").forEach(function (b) { b.classList.toggle("on", +b.dataset.p === p); });
      pager.dataset.page = String(p);
      prev.disabled = p === 0; next.disabled = p === pages - 1;
    }
    if (pages === 1) { items.forEach(fill); return; }
    const prev = document.createElement("button"); prev.textContent = "‹ previous"; prev.type = "button";
    const next = document.createElement("button"); next.textContent = "next ›"; next.type = "button";
    pager.appendChild(prev);
    for (let p = 0; p < pages; p++) {
      const b = document.createElement("button"); b.type = "button"; b.dataset.p = String(p); b.textContent = String(p + 1);
      b.addEventListener("click", function () { show(p); });
      pager.appendChild(b);
    }
    pager.appendChild(next);
    const info = document.createElement("span");
    info.textContent = items.length + " shown in " + pages + " pages of " + size;
    pager.appendChild(info);
    prev.addEventListener("click", function () { show(Math.max(0, +pager.dataset.page - 1)); });
    next.addEventListener("click", function () { show(Math.min(pages - 1, +pager.dataset.page + 1)); });
    show(0);
  }

  document.querySelectorAll(".gallery").forEach(function (g) {
    const cards = Array.from(g.querySelector(".cards").children);
    pageable(g, cards, +g.dataset.pageSize || 24, g.querySelector(".pager"));
  });
  document.querySelectorAll("table.paged").forEach(function (t) {
    const rows = Array.from(t.tBodies[0].rows);
    pageable(t, rows, +t.dataset.pageSize || 50, t.nextElementSibling);
  });

  // charts one after the other, so the page stays responsive while they draw
  const boxes = Array.from(document.querySelectorAll(".chart[data-chart]"));
  let drawn = 0;
  function drawNext(i) {
    if (i >= boxes.length) { document.body.dataset.chartsDrawn = String(drawn); return; }
    const el = boxes[i];
    const spec = specs[el.dataset.chart];
    vegaEmbed(el, spec, { actions: false, renderer: "svg" }).then(function () {
      drawn++; el.dataset.drawn = "1";
    }).catch(function (err) {
      console.error("chart " + el.dataset.chart + ": " + err);
    }).then(function () { setTimeout(function () { drawNext(i + 1); }, 0); });
  }
  drawNext(0);
})();
