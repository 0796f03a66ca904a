// EarthSignature viewer: committed products' polygons (PMTiles) in CLC colours, statistics.
"use strict";
(() => {
  const protocol = new pmtiles.Protocol();
  maplibregl.addProtocol("pmtiles", protocol.tile);

  // What the page shows; also read by tests (window.esState).
  const state = {
    catalog: null, date: null, products: [], shown: [], idle: false, stats: null, fitted: false,
    fittedBounds: null, basemap: false,
  };
  window.esState = state;
  const $ = (id) => document.getElementById(id);

  const map = new maplibregl.Map({
    container: "map",
    style: {
      version: 8,
      sources: {},
      layers: [{ id: "background", type: "background", paint: { "background-color": "#6d8aa3" } }],
    },
    center: [2, 46],
    zoom: 4,
    attributionControl: false,
  });
  window.esMap = map;
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }));
  map.addControl(new maplibregl.ScaleControl({ unit: "metric", maxWidth: 120 }), "bottom-left");

  // ---- offline basemap: Natural Earth land, coastlines and borders (packaged) -----------
  async function addBasemap(style) {
    map.setPaintProperty("background", "background-color", style.sea);
    const data = await getJson(style.url);
    map.addSource("basemap", { type: "geojson", data });
    const land = ["==", ["get", "kind"], "land"];
    map.addLayer({ id: "land", type: "fill", source: "basemap", filter: land,
      paint: { "fill-color": style.land } });
    map.addLayer({ id: "coast", type: "line", source: "basemap", filter: land,
      paint: { "line-color": style.coast, "line-width": 0.8 } });
    map.addLayer({ id: "borders", type: "line", source: "basemap",
      filter: ["==", ["get", "kind"], "border"],
      paint: { "line-color": style.border, "line-width": 1, "line-dasharray": [3, 2] } });
    state.basemap = true;
  }

  function whenIdle() {
    state.idle = false;
    map.once("idle", () => { state.idle = true; });
    map.triggerRepaint();
  }

  async function getJson(url) {
    const response = await fetch(url);
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  function modelQuery() {
    const c = state.catalog;
    return `model=${encodeURIComponent(c.model)}&version=${c.version}`;
  }

  // ---- catalog, selectors, legend -------------------------------------------------------
  async function loadCatalog(model, version) {
    const query = model ? `?model=${encodeURIComponent(model)}&version=${version}` : "";
    const catalog = await getJson(`/api/catalog${query}`);
    state.catalog = catalog;
    if (!state.basemap) {
      try { await addBasemap(catalog.basemap); } catch (err) { console.warn("basemap", err); }
    }
    const models = $("model");
    models.innerHTML = "";
    for (const mv of catalog.models) {
      const option = new Option(`${mv.model} v${mv.version}`, `${mv.model}|${mv.version}`);
      option.selected = mv.model === catalog.model && mv.version === catalog.version;
      models.add(option);
    }
    state.fitted = false;
    fillChoices();
  }

  // Per-date maps, or tile-period composites (land use of a month, season, rolling year):
  // the second selector lists dates or periods, and the map shows that choice's products.
  function fillChoices() {
    const composites = $("view").value === "composites";
    const values = composites ? state.catalog.periods : state.catalog.dates;
    $("date-label").textContent = composites ? "Period" : "Date";
    const choices = $("date");
    choices.innerHTML = "";
    for (const v of values) choices.add(new Option(v, v));
    choices.value = values[values.length - 1] || "";
    showDate(choices.value);
  }

  function renderLegend(codes) {
    const list = $("legend");
    list.innerHTML = "";
    for (const cls of state.catalog.legend) {
      const item = document.createElement("li");
      item.className = codes.has(cls.code) ? "present" : "absent";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = cls.color;
      item.append(swatch, `${cls.code} ${cls.label}`);
      list.append(item);
    }
  }

  // ---- products of a date ---------------------------------------------------------------
  function clearShown() {
    for (const id of state.shown) {
      for (const layer of [`fill-${id}`, `edge-${id}`, `cloud-${id}`, `conf-${id}`]) {
        if (map.getLayer(layer)) map.removeLayer(layer);
      }
      for (const source of [`p-${id}`, `c-${id}`, `k-${id}`]) if (map.getSource(source)) map.removeSource(source);
    }
    state.shown = [];
  }

  // Product footprints: an outline, and a marker where a product is too small to see.
  function showFootprints(products) {
    const style = state.catalog.basemap;
    const data = {
      type: "FeatureCollection",
      features: products.map((p) => ({
        type: "Feature", properties: { id: p.id }, geometry: p.footprint,
      })),
    };
    const centres = {
      type: "FeatureCollection",
      features: products.map((p) => ({
        type: "Feature", properties: { id: p.id },
        geometry: { type: "Point", coordinates: [(p.bbox[0] + p.bbox[2]) / 2, (p.bbox[1] + p.bbox[3]) / 2] },
      })),
    };
    if (map.getSource("footprints")) {
      map.getSource("footprints").setData(data);
      map.getSource("footprint-centres").setData(centres);
      return;
    }
    map.addSource("footprints", { type: "geojson", data });
    map.addSource("footprint-centres", { type: "geojson", data: centres });
    map.addLayer({ id: "footprint-line", type: "line", source: "footprints",
      paint: { "line-color": style.footprint, "line-width": 2 } });
    map.addLayer({ id: "footprint-marker", type: "circle", source: "footprint-centres", maxzoom: 9,
      paint: { "circle-radius": 6, "circle-color": "#ffffff", "circle-stroke-color": style.footprint,
        "circle-stroke-width": 2 } });
  }

  function showDate(date) {
    state.date = date;
    clearShown();
    const products = $("view").value === "composites"
      ? state.catalog.composites.filter((p) => p.period === date)
      : state.catalog.products.filter((p) => p.date === date);
    state.products = products;
    const codes = new Set();
    products.forEach((p, i) => {
      p.categories.forEach((c) => codes.add(c));
      const id = String(i);
      map.addSource(`p-${id}`, { type: "vector", url: `pmtiles://${location.origin}${p.tiles}` });
      map.addLayer(
        {
          id: `fill-${id}`,
          type: "fill",
          source: `p-${id}`,
          "source-layer": "landcover",
          paint: { "fill-color": state.catalog.fill_color, "fill-opacity": 1 },
        },
        map.getLayer("footprint-line") ? "footprint-line" : undefined,
      );
      // polygon edges: a pale class stays readable whatever lies next to it
      map.addLayer(
        {
          id: `edge-${id}`,
          type: "line",
          source: `p-${id}`,
          "source-layer": "landcover",
          minzoom: 10,
          paint: { "line-color": "#333333", "line-opacity": 0.35, "line-width": 0.5 },
        },
        map.getLayer("footprint-line") ? "footprint-line" : undefined,
      );
      state.shown.push(id);
    });
    showFootprints(products);
    renderLegend(codes);
    updateConfidenceToggle(products);
    if (products.length && !state.fitted) {
      const b = products.reduce(
        (acc, p) => [Math.min(acc[0], p.bbox[0]), Math.min(acc[1], p.bbox[1]),
          Math.max(acc[2], p.bbox[2]), Math.max(acc[3], p.bbox[3])],
        [180, 90, -180, -90],
      );
      map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 40, animate: false, maxZoom: 15 });
      state.fitted = true;
      state.fittedBounds = b;
    }
    showClouds(products);
    showConfidence(products);
    whenIdle();
  }

  async function showClouds(products) {
    if (!$("clouds").checked) return;
    const date = state.date;
    for (const [i, p] of products.entries()) {
      if (!p.cloud) continue; // composites: cloudy observations were never counted
      const meta = await getJson(`${p.cloud}?meta=1`);
      if (state.date !== date || !$("clouds").checked || map.getSource(`c-${i}`)) return;
      map.addSource(`c-${i}`, { type: "image", url: p.cloud, coordinates: meta.coordinates });
      map.addLayer({ id: `cloud-${i}`, type: "raster", source: `c-${i}`, paint: { "raster-opacity": 0.8 } });
    }
    whenIdle();
  }

  // ---- per-pixel confidence (greyscale: black 0 %, white 100 %), when products have it --
  function updateConfidenceToggle(products) {
    const box = $("confidence");
    const any = products.some((p) => p.confidence);
    box.disabled = !any;
    if (!any) box.checked = false;
    $("confidence-label").title = any ? "Per-pixel confidence of the model (black 0 %, white 100 %)"
      : "No confidence map for the products of this date";
  }

  async function showConfidence(products) {
    if (!$("confidence").checked) return;
    const date = state.date;
    for (const [i, p] of products.entries()) {
      if (!p.confidence) continue;
      const meta = await getJson(`${p.confidence}?meta=1`);
      if (state.date !== date || !$("confidence").checked || map.getSource(`k-${i}`)) return;
      map.addSource(`k-${i}`, { type: "image", url: p.confidence, coordinates: meta.coordinates });
      map.addLayer(
        { id: `conf-${i}`, type: "raster", source: `k-${i}`, paint: { "raster-opacity": 1 } },
        map.getLayer(`cloud-${i}`) ? `cloud-${i}` : undefined,
      );
    }
    whenIdle();
  }

  function toggleConfidence() {
    if ($("confidence").checked) {
      showConfidence(state.products);
    } else {
      for (const id of state.shown) {
        if (map.getLayer(`conf-${id}`)) map.removeLayer(`conf-${id}`);
        if (map.getSource(`k-${id}`)) map.removeSource(`k-${id}`);
      }
      whenIdle();
    }
  }

  function toggleClouds() {
    if ($("clouds").checked) {
      showClouds(state.products);
    } else {
      for (const id of state.shown) {
        if (map.getLayer(`cloud-${id}`)) map.removeLayer(`cloud-${id}`);
        if (map.getSource(`c-${id}`)) map.removeSource(`c-${id}`);
      }
      whenIdle();
    }
  }

  // ---- click: polygon attributes --------------------------------------------------------
  map.on("click", (e) => {
    if (drawing) return;
    const layers = state.shown.map((id) => `fill-${id}`).filter((l) => map.getLayer(l));
    const [feature] = map.queryRenderedFeatures(e.point, { layers });
    const body = $("info").tBodies[0];
    body.innerHTML = "";
    if (!feature) {
      body.innerHTML = "<tr><td>No polygon here.</td></tr>";
      return;
    }
    // the tiles carry code, label and area; the product's own attributes come from the catalog
    const product = state.products[Number(feature.layer.id.slice("fill-".length))] || {};
    const attributes = {
      ...feature.properties,
      product_id: product.id, date: product.date, model: product.model, version: product.version,
    };
    for (const [key, value] of Object.entries(attributes)) {
      const row = body.insertRow();
      const hectares = key === "area_m2";
      row.insertCell().textContent = hectares ? "area" : key;
      row.insertCell().textContent = hectares ? `${(value / 1e4).toFixed(2)} ha` : value;
    }
  });

  // ---- area: rectangle drag or WKT ------------------------------------------------------
  let drawing = false;
  let start = null;
  function rectangle(a, b) {
    const [x0, x1] = [Math.min(a.lng, b.lng), Math.max(a.lng, b.lng)];
    const [y0, y1] = [Math.min(a.lat, b.lat), Math.max(a.lat, b.lat)];
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]];
  }
  function showArea(ring) {
    const data = { type: "Feature", properties: {}, geometry: { type: "Polygon", coordinates: [ring] } };
    if (map.getSource("aoi")) map.getSource("aoi").setData(data);
    else {
      map.addSource("aoi", { type: "geojson", data });
      map.addLayer({ id: "aoi-line", type: "line", source: "aoi", paint: { "line-color": "#000", "line-width": 2 } });
    }
  }
  function toWkt(ring) {
    return `POLYGON ((${ring.map(([x, y]) => `${x.toFixed(6)} ${y.toFixed(6)}`).join(", ")}))`;
  }
  function parseWktRing(wkt) {
    const numbers = wkt.replace(/^[^(]*\(+/, "").replace(/\).*$/, "");
    return numbers.split(",").map((pair) => pair.trim().split(/\s+/).map(Number));
  }
  $("draw").addEventListener("click", () => {
    drawing = !drawing;
    $("draw").classList.toggle("active", drawing);
    map.getCanvas().style.cursor = drawing ? "crosshair" : "";
    if (drawing) map.dragPan.disable(); else map.dragPan.enable();
  });
  map.on("mousedown", (e) => { if (drawing) start = e.lngLat; });
  map.on("mousemove", (e) => { if (drawing && start) showArea(rectangle(start, e.lngLat)); });
  map.on("mouseup", (e) => {
    if (!drawing || !start) return;
    const ring = rectangle(start, e.lngLat);
    start = null;
    drawing = false;
    $("draw").classList.remove("active");
    map.dragPan.enable();
    map.getCanvas().style.cursor = "";
    $("wkt").value = toWkt(ring);
    showArea(ring);
    computeStats();
  });
  $("compute").addEventListener("click", () => {
    try { showArea(parseWktRing($("wkt").value)); } catch (_) { /* the server says what is wrong */ }
    computeStats();
  });

  async function computeStats() {
    const wkt = $("wkt").value.trim();
    if (!wkt) return;
    const status = $("stats-status");
    status.textContent = "Computing…";
    $("chart").innerHTML = "";
    const dates = state.catalog.dates;
    let query = `/api/stats?wkt=${encodeURIComponent(wkt)}&${modelQuery()}`;
    const perDate = $("view").value === "dates";
    if (perDate && dates.length > 1 && state.date !== dates[0]) {
      query += `&change=${dates[0]},${state.date}`;
    }
    try {
      state.stats = await getJson(query);
      status.textContent = "";
      drawChart(state.stats);
    } catch (err) {
      state.stats = { error: String(err.message || err) };
      status.textContent = `Error: ${state.stats.error}`;
    }
  }

  // ---- chart: one stacked bar per date (class areas in CLC colours, cloud grey) ---------
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, parent) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (parent) parent.append(el);
    return el;
  }
  function drawChart(result) {
    const chart = $("chart");
    chart.innerHTML = "";
    if (!result.dates.length) {
      chart.textContent = "No committed product covers this area in the range.";
      return;
    }
    const colors = Object.fromEntries(state.catalog.legend.map((c) => [c.code, c.color]));
    const totals = result.dates.map((d) => d.cloud_m2 + d.classes.reduce((s, c) => s + c.area_m2, 0));
    const max = Math.max(...totals, 1);
    // date | bar | total: the bar leaves room for the longest total label
    const width = 290, labelWidth = 70, row = 26;
    const barWidth = width - 70 - labelWidth;
    const root = svg("svg", { width, height: row * result.dates.length + 8, role: "img" }, chart);
    result.dates.forEach((d, i) => {
      const y = 4 + i * row;
      svg("text", { x: 0, y: y + 14 }, root).textContent = d.date;
      let x = 70;
      const parts = [...d.classes.map((c) => [c.code, c.label, c.area_m2]), ["cloud", "Cloud", d.cloud_m2]];
      for (const [code, label, area] of parts) {
        if (area <= 0) continue;
        const w = (barWidth * area) / max;
        const rect = svg("rect", {
          x, y, width: Math.max(w, 0.5), height: row - 8,
          fill: code === "cloud" ? "#9e9e9e" : colors[code] || "#000", "data-code": code,
        }, root);
        svg("title", {}, rect).textContent = `${code} ${label}: ${(area / 1e4).toFixed(2)} ha`;
        x += w;
      }
      svg("text", { x: x + 3, y: y + 14, class: "total" }, root).textContent = `${(totals[i] / 1e6).toFixed(2)} km²`;
    });
    if (result.change) {
      const p = document.createElement("p");
      p.className = "change";
      p.textContent = `Changed ${result.change.date_from} → ${result.change.date_to}: ` +
        `${(result.change.changed_m2 / 1e4).toFixed(2)} ha`;
      chart.append(p);
    }
  }

  // ---- controls -------------------------------------------------------------------------
  $("date").addEventListener("change", (e) => showDate(e.target.value));
  $("view").addEventListener("change", fillChoices);
  $("model").addEventListener("change", (e) => {
    const [model, version] = e.target.value.split("|");
    loadCatalog(model, Number(version));
  });
  $("clouds").addEventListener("change", toggleClouds);
  $("confidence").addEventListener("change", toggleConfidence);

  map.on("load", () => {
    loadCatalog().catch((err) => { $("stats-status").textContent = `Error: ${err.message}`; });
  });
})();
