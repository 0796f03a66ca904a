// Copy the browser builds of MapLibre GL JS and pmtiles into static/vendor/ (`npm ci && npm run build`).
import { copyFileSync, mkdirSync, writeFileSync, readFileSync } from "node:fs";

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
