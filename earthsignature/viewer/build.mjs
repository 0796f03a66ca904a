// Copy the browser builds of MapLibre GL JS and pmtiles into static/vendor/ (`npm ci && npm run build`),
// and write the offline basemap (Natural Earth 1:110m land and country borders, from world-atlas).
import { copyFileSync, mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { feature, mesh } from "topojson-client";

const out = new URL("./static/vendor/", import.meta.url);
mkdirSync(out, { recursive: true });
const copies = [
  ["maplibre-gl/dist/maplibre-gl.js", "maplibre-gl.js"],
  ["maplibre-gl/dist/maplibre-gl.css", "maplibre-gl.css"],
  ["maplibre-gl/LICENSE.txt", "LICENSE-maplibre-gl.txt"],
  ["pmtiles/dist/pmtiles.js", "pmtiles.js"],
];
for (const [from, to] of copies) {
  copyFileSync(new URL(`./node_modules/${from}`, import.meta.url), new URL(to, out));
}
const pm = JSON.parse(readFileSync(new URL("./node_modules/pmtiles/package.json", import.meta.url)));
writeFileSync(
  new URL("LICENSE-pmtiles.txt", out),
  `pmtiles ${pm.version} (https://github.com/protomaps/PMTiles), ${pm.license} license, Copyright 2021 Protomaps LLC.\n`,
);

// Basemap: Natural Earth 1:110m (public domain) via world-atlas 2.0.2 (ISC), as GeoJSON with
// coordinates rounded to 0.01 degree (about 1 km: context under the product maps, not data).
const atlas = JSON.parse(
  readFileSync(new URL("./node_modules/world-atlas/countries-110m.json", import.meta.url)),
);
const round = (value) => (Array.isArray(value) ? value.map(round) : Math.round(value * 100) / 100);
// a line of [x, y] points without the repeats rounding makes; deeper arrays are walked
const dedupe = (value) =>
  typeof value[0][0] === "number"
    ? value.filter((p, i) => i === 0 || p[0] !== value[i - 1][0] || p[1] !== value[i - 1][1])
    : value.map(dedupe);
const geometry = (g) => ({ type: g.type, coordinates: dedupe(round(g.coordinates)) });
const land = feature(atlas, atlas.objects.land);
const borders = mesh(atlas, atlas.objects.countries, (a, b) => a !== b);
const basemap = {
  type: "FeatureCollection",
  features: [
    ...land.features.map((f) => ({ type: "Feature", properties: { kind: "land" }, geometry: geometry(f.geometry) })),
    { type: "Feature", properties: { kind: "border" }, geometry: geometry(borders) },
  ],
};
writeFileSync(new URL("basemap-110m.json", out), JSON.stringify(basemap));
writeFileSync(
  new URL("LICENSE-basemap.txt", out),
  "basemap-110m.json: Natural Earth 1:110m land and admin-0 boundaries (public domain,\n" +
    "https://www.naturalearthdata.com/about/terms-of-use/), version 4.1.0 as redistributed\n" +
    "by world-atlas 2.0.2 (https://github.com/topojson/world-atlas, ISC license, Copyright\n" +
    "2013-2019 Michael Bostock); converted by build.mjs with topojson-client 3.1.0, rounded\n" +
    "to 0.01 degree.\n",
);
