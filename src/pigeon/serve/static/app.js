// pigeon's page: send 1-4 views of one place to /v1/predict and draw the guesses on a vector world map.
// No tiles, no CDN: the countries come from /v1/boundaries, Leaflet from /static/vendor. Text from the server is
// only ever set as textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { info: null, names: {}, files: [], cells: null, cellLayer: null, pointLayer: null, marks: null,
                regionLayer: null };
// The unseen score is the share of validation photos closer to the training gallery: warn beyond 99 % of them.
const UNSEEN_WARNING = 0.99;

const map = L.map("map", { worldCopyJump: true, minZoom: 1, maxZoom: 12, zoomSnap: 0.5 }).setView([20, 0], 2);
map.attributionControl.setPrefix("Leaflet").addAttribution("Boundaries: Natural Earth");
const countryLayer = L.geoJSON(null, {
  interactive: false,
  style: { color: "#8a8f98", weight: 0.6, fillColor: "#efeadf", fillOpacity: 1 },
}).addTo(map);

// Only polygons are drawn: the point or line parts that simplifying tiny islands leaves behind would otherwise
// become Leaflet's default marker pins.
function polygonsOnly(collection) {
  const features = [];
  for (const f of (collection && collection.features) || []) {
    const g = f.geometry;
    if (!g) continue;
    if (g.type === "Polygon" || g.type === "MultiPolygon") {
      features.push(f);
    } else if (g.type === "GeometryCollection") {
      const parts = [];
      for (const part of g.geometries) {
        if (part.type === "Polygon") parts.push(part.coordinates);
        else if (part.type === "MultiPolygon") parts.push(...part.coordinates);
      }
      if (parts.length) features.push({ ...f, geometry: { type: "MultiPolygon", coordinates: parts } });
    }
  }
  return { type: "FeatureCollection", features };
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function headers() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

async function getJSON(url, options = {}) {
  const res = await fetch(url, options);
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const message = body && body.error ? body.error.message : `${res.status} ${res.statusText}`;
    throw new Error(message);
  }
  return body;
}

async function start() {
  try {
    state.info = await getJSON("/v1/info");
  } catch (err) {
    setStatus(`The server did not answer: ${err.message}`, true);
    return;
  }
  const info = state.info;
  $("model").textContent = `model: ${info.model} (${info.n_cells} cells, ${info.backbone})`;
  $("intended-use").textContent = info.intended_use;
  $("max-views").textContent = info.limits.max_views;
  $("key-row").hidden = !info.auth_required;
  if (info.precision_km) {
    $("precision").hidden = false;
    $("precision").textContent = `This server gives locations to no finer than ${info.precision_km} km.`;
  }
  loadBoundaries();
  document.body.dataset.state = "ready";
  setStatus("Ready: drop photos or choose files.");
}

async function loadBoundaries() {
  for (let attempt = 0; attempt < 30; attempt++) {
    try {
      const countries = await getJSON("/v1/boundaries");
      countryLayer.addData(polygonsOnly(countries));
      for (const f of countries.features) state.names[f.properties.iso_a2] = f.properties.name;
      document.body.dataset.boundaries = "drawn";
      return;
    } catch (err) {
      await new Promise((r) => setTimeout(r, 1000)); // the server prepares them while it warms up
    }
  }
}

async function loadCells() {
  if (state.cells || !state.info.cell_polygons) return;
  state.cells = polygonsOnly(await getJSON("/v1/cells", { headers: headers() }));
}

function chooseFiles(fileList) {
  const files = Array.from(fileList);
  const max = state.info ? state.info.limits.max_views : 4;
  if (files.length === 0) return;
  if (files.length > max) {
    setStatus(`Choose at most ${max} photos: the views of one place.`, true);
    return;
  }
  state.files = files;
  const thumbs = $("thumbs");
  thumbs.replaceChildren();
  for (const file of files) {
    const img = document.createElement("img");
    img.alt = file.name;
    img.src = URL.createObjectURL(file); // stays in this browser
    img.onload = () => URL.revokeObjectURL(img.src);
    thumbs.appendChild(img);
  }
  $("locate").disabled = false;
  locate();
}

async function locate() {
  if (!state.files.length) return;
  const form = new FormData();
  for (const file of state.files) form.append("files", file, file.name);
  const params = new URLSearchParams({ top_k: $("top-k").value, map: "1" });
  if ($("objective").value) params.set("guess", $("objective").value);
  document.body.dataset.state = "locating";
  setStatus(`Locating ${state.files.length} photo(s)…`);
  $("locate").disabled = true;
  try {
    const result = await getJSON(`/v1/predict?${params}`, { method: "POST", body: form, headers: headers() });
    await loadCells().catch(() => null);
    render(result);
    document.body.dataset.state = "done";
    setStatus("Done.");
  } catch (err) {
    document.body.dataset.state = "error";
    setStatus(err.message, true);
  } finally {
    $("locate").disabled = false;
  }
}

function place(country, region) {
  const name = country ? state.names[country] || country : "somewhere";
  return region ? `${name} · ${region}` : name;
}

const pct = (p) => {
  if (p >= 0.995) return "> 99 %";
  if (p < 0.001) return "< 0.1 %";
  return p < 0.1 ? `${(100 * p).toFixed(1)} %` : `${Math.round(100 * p)} %`;
};
const km = (v) => `${Math.round(v).toLocaleString("en")} km`;
// Coordinates to the decimals the posterior supports: a guess good to hundreds of km has no decimals.
const coords = (lat, lon, decimals = 3) =>
  `${Math.abs(lat).toFixed(decimals)}° ${lat >= 0 ? "N" : "S"}, ${Math.abs(lon).toFixed(decimals)}° ${lon >= 0 ? "E" : "W"}`;
const heat = (t) => `hsl(${Math.round(55 - 55 * t)}, 95%, ${Math.round(55 - 12 * t)}%)`;

function auxText(name, value) {
  if (name === "climate") return `climate ${value.class}${value.name ? `, ${value.name}` : ""} (${pct(value.prob)})`;
  if (name === "month") {
    const month = new Date(2000, value.month - 1, 1).toLocaleString("en", { month: "long" });
    return `month ${month} (${pct(value.prob)})`;
  }
  const [label, unit, decimals] = (state.info.aux_labels || {})[name] || [name.replace(/_/g, " "), "", 1];
  const number = Number(value).toLocaleString("en", { maximumFractionDigits: decimals, minimumFractionDigits: decimals });
  return `${label} ${number}${unit ? ` ${unit}` : ""}`;
}

function renderCertainty(r) {
  const w = r.p_within;
  $("confidence").replaceChildren();
  const strong = document.createElement("strong");
  if (w && w["200km"] !== null && w["200km"] !== undefined) {
    strong.textContent = `P(within 200 km) ${pct(w["200km"])}`;
  } else {
    strong.textContent = `P(in this area) ${pct(r.confidence)}`;
  }
  $("confidence").append(strong, ` · expected error ${km(r.expected_km)}`);
  const others = w ? ["1km", "25km", "750km", "2500km"].filter((k) => w[k] !== null && w[k] !== undefined) : [];
  $("within").textContent = others.length ?
    `within ${others.map((k) => `${Number(k.replace("km", "")).toLocaleString("en")} km ${pct(w[k])}`).join(" · ")}` : "";
  const c = r.credible;
  $("region").textContent = c ? `${Math.round(100 * c.q)} % credible region: ${c.n_cells} area(s), ` +
    `${Math.round(c.area_km2).toLocaleString("en")} km²${c.cells && state.cells ? " (dashed blue on the map)" : ""}` : "";
  $("calibration").hidden = state.info.calibrated;
  $("calibration").textContent = "These probabilities are not calibrated: the model folder has no calibration " +
    "(run pigeon calibrate on it).";
  const unseen = $("unseen");
  unseen.hidden = !(r.unseen !== null && r.unseen !== undefined && r.unseen >= UNSEEN_WARNING);
  const share = r.unseen >= 0.999 ? "any" : `${Math.floor(100 * r.unseen)} % of the`;
  unseen.textContent = `Unseen ground: this photo is less like the training photos than ${share} ` +
    "validation photos were. The model has probably never seen such a place: its probabilities are widened " +
    "toward where its training photos were, and the guess may be very far off.";
}

function render(r) {
  $("result").hidden = false;
  const d = r.coordinate_decimals;
  $("guess").textContent = `${place(r.guess.country, r.guess.region)} — ${coords(r.guess.lat, r.guess.lon, d)}`;
  renderCertainty(r);
  const list = $("candidates");
  list.replaceChildren();
  const ranked = r.top_k.map((c, i) => ({ ...c, isGuess: i === 0 })).sort((a, b) => b.probability - a.probability);
  for (const c of ranked) {
    const li = document.createElement("li");
    const prob = document.createElement("span");
    prob.className = "prob";
    prob.textContent = ` ${pct(c.probability)}`;
    li.append(`${place(c.country, c.region)} (${coords(c.lat, c.lon, d)})`, prob);
    if (c.isGuess) {
      li.classList.add("is-guess");
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = "guess";
      li.append(" ", badge);
    }
    list.appendChild(li);
  }
  const aux = Object.entries(r.aux || {}).map(([k, v]) => auxText(k, v));
  $("aux").textContent = aux.length ? `Also guessed: ${aux.join("; ")}` : "";
  const t = r.timings;
  $("timings").textContent = `${t.total_ms.toFixed(0)} ms (decode ${t.decode_ms.toFixed(0)}, wait ` +
    `${t.queue_ms.toFixed(0)}, model ${t.model_ms.toFixed(0)} for ${t.batch_images} image(s))`;
  drawProbabilities(r.probability_map);
  drawRegion(r.credible);
  drawMarks(r, ranked);
}

// The credible region: the outlines of its cells (the page already holds every cell's polygon).
function drawRegion(credible) {
  if (state.regionLayer) state.regionLayer.remove();
  state.regionLayer = null;
  if (!credible || !credible.cells || !state.cells) return;
  const inside = new Set(credible.cells);
  const shape = { type: "FeatureCollection", features: state.cells.features.filter((f) => inside.has(f.properties.cell)) };
  state.regionLayer = L.geoJSON(shape, {
    interactive: false,
    style: { color: "#1d4ed8", weight: 1.5, opacity: 0.9, dashArray: "5 4", fill: false, className: "credible-region" },
  }).addTo(map);
}

function drawProbabilities(fc) {
  if (state.cellLayer) state.cellLayer.remove();
  if (state.pointLayer) state.pointLayer.remove();
  state.cellLayer = state.pointLayer = null;
  if (!fc) return;
  const probs = {};
  let pmax = 0;
  for (const f of fc.features) pmax = Math.max(pmax, f.properties.prob);
  if (state.cells && fc.features.length && fc.features[0].properties.cell !== undefined) {
    for (const f of fc.features) probs[f.properties.cell] = f.properties.prob;
    state.cellLayer = L.geoJSON(state.cells, {
      style: (f) => {
        const t = (probs[f.properties.cell] || 0) / pmax;
        return { color: heat(t), weight: t > 0.05 ? 1 : 0.3, fillColor: heat(t), fillOpacity: 0.08 + 0.62 * t };
      },
      onEachFeature: (f, layer) => layer.bindTooltip(
        `${place(f.properties.country, f.properties.region)}: ${pct(probs[f.properties.cell] || 0)}`),
    }).addTo(map);
  } else {
    const points = fc.features.filter((f) => f.properties.prob >= 0.01 * pmax);
    state.pointLayer = L.layerGroup(points.map((f) => {
      const t = f.properties.prob / pmax;
      const [lon, lat] = f.geometry.coordinates;
      return L.circleMarker([lat, lon], { radius: 3 + 12 * Math.sqrt(t), color: heat(t), weight: 1,
                                          fillColor: heat(t), fillOpacity: 0.65 })
        .bindTooltip(pct(f.properties.prob));
    })).addTo(map);
  }
}

function drawMarks(r, ranked) {
  if (state.marks) state.marks.remove();
  const layers = [];
  ranked.forEach((c, i) => {
    if (c.isGuess) return;
    layers.push(L.circleMarker([c.lat, c.lon], {
      radius: 5, color: "#7c2d12", weight: 1.5, fillColor: "#fdba74", fillOpacity: 0.9, className: "candidate-marker",
    }).bindTooltip(`#${i + 1} ${place(c.country, c.region)} ${pct(c.probability)}`));
  });
  const guess = [r.guess.lat, r.guess.lon];
  layers.push(L.circleMarker(guess, { radius: 8, color: "#7c2d12", weight: 2, fillColor: "#ea580c", fillOpacity: 1,
                                      className: "guess-marker" })
    .bindTooltip("guess", { permanent: true, direction: "top" }));
  const bounds = [guess];
  const truth = $("truth");
  if (r.exif_gps) {
    const spot = [r.exif_gps.lat, r.exif_gps.lon];
    layers.push(L.polyline([guess, spot], { color: "#15803d", weight: 2, dashArray: "6 5" }));
    layers.push(L.circleMarker(spot, { radius: 8, color: "#14532d", weight: 2, fillColor: "#22c55e", fillOpacity: 1,
                                       className: "truth-marker" })
      .bindTooltip("photo's GPS", { permanent: true, direction: "bottom" }));
    bounds.push(spot);
    truth.hidden = false;
    truth.textContent = `The photo's EXIF GPS says ${coords(spot[0], spot[1], 3)}: the guess is ` +
      `${Math.round(r.exif_gps.distance_km).toLocaleString()} km away.`;
  } else {
    truth.hidden = true;
  }
  state.marks = L.layerGroup(layers).addTo(map);
  // the view holds the guess, the truth and a credible region of a few areas (a spread one would zoom out to all)
  const area = state.regionLayer && r.credible.n_cells <= 12 ? state.regionLayer.getBounds() : null;
  if (area && area.isValid()) bounds.push(area.getSouthWest(), area.getNorthEast());
  // no animation: the map is final when the result is shown (and when a test takes its screenshot)
  if (bounds.length > 1) map.fitBounds(bounds, { padding: [60, 60], maxZoom: 5, animate: false });
  else map.setView(guess, Math.max(map.getZoom(), 3), { animate: false });
}

const drop = $("drop");
drop.addEventListener("click", (e) => { if (e.target.tagName !== "LABEL") $("files").click(); });
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("files").click(); });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  chooseFiles(e.dataTransfer.files);
});
$("files").addEventListener("change", (e) => chooseFiles(e.target.files));
$("locate").addEventListener("click", locate);
$("top-k").addEventListener("change", locate);
$("objective").addEventListener("change", locate);
start();
