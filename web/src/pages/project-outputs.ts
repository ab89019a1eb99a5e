// A finished run's outputs: the player (master, or the preview when there is no
// master) with its waveform read from the peaks asset, and the downloads list.

import * as api from "../api.js";
import { h, replace } from "../dom.js";
import { explain } from "../errors.js";
import type { Asset } from "../gen/cadenza/v1/asset_pb.js";
import { AssetKind } from "../gen/cadenza/v1/common_pb.js";
import { ASSET_IDS, ASSET_NAMES } from "../labels.js";
import { createPlayer } from "../player.js";
import { formatBytes } from "../util.js";
import { parsePeaks, type Peaks } from "../waveform.js";

/** The order downloads are listed in. */
const DOWNLOADS: AssetKind[] = [AssetKind.MASTER, AssetKind.MASTER_FLAC, AssetKind.PREVIEW, AssetKind.STEM, AssetKind.VOCALS, AssetKind.MIX, AssetKind.MIDI, AssetKind.LYRICS];

async function listAll(parent: string, signal: AbortSignal): Promise<Asset[]> {
  const all: Asset[] = [];
  let pageToken = "";
  do {
    const page = await api.assets.listAssets({ parent, pageSize: 200, pageToken }, { signal });
    all.push(...page.assets);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

/** Reads an asset through the streamed ReadAsset call and decodes it as text. */
async function readText(name: string, signal: AbortSignal): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const part of api.assets.readAsset({ name }, { signal })) {
    chunks.push(part.data);
    size += part.data.length;
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return new TextDecoder().decode(bytes);
}

function downloadLabel(asset: Asset): string {
  const base = ASSET_NAMES[asset.kind] ?? asset.fileName;
  if (asset.kind === AssetKind.STEM) {
    const part = asset.fileName.replace(/^stems\//, "").replace(/\.[^.]+$/, "");
    return `${base}: ${part}`;
  }
  if (asset.kind === AssetKind.PREVIEW) {
    const ext = asset.fileName.split(".").pop()?.toUpperCase();
    return ext ? `${base} (${ext})` : base;
  }
  return base;
}

/**
 * Fills `playerSlot` and `downloadsSlot` with the outputs of `run`
 * (`projects/{p}/runs/{r}`).
 */
export async function showOutputs(run: string, title: string, playerSlot: HTMLElement, downloadsSlot: HTMLElement, signal: AbortSignal): Promise<void> {
  replace(playerSlot, h("p", { class: "muted", role: "status" }, "Loading the player…"));
  replace(downloadsSlot);
  let assets: Asset[];
  try {
    assets = await listAll(run, signal);
  } catch (e) {
    if (!signal.aborted) replace(playerSlot, h("p", { class: "alert alert-error", role: "alert" }, `The song's files could not be listed: ${explain(e).message}`));
    return;
  }
  const find = (kind: AssetKind) => assets.find((a) => a.kind === kind);
  const audioAsset = find(AssetKind.MASTER) ?? find(AssetKind.PREVIEW);
  const peaksAsset = find(AssetKind.PEAKS);
  const offered = assets
    .filter((a) => DOWNLOADS.includes(a.kind))
    .sort((a, b) => DOWNLOADS.indexOf(a.kind) - DOWNLOADS.indexOf(b.kind) || a.fileName.localeCompare(b.fileName));

  // One signed URL per file, fetched together.
  const urls = new Map<string, string>();
  const failures: string[] = [];
  const wanted = new Set(offered.map((a) => a.name));
  if (audioAsset) wanted.add(audioAsset.name);
  await Promise.all(
    [...wanted].map(async (name) => {
      try {
        urls.set(name, (await api.assets.getDownloadUrl({ name }, { signal })).url);
      } catch (e) {
        failures.push(explain(e).message);
      }
    }),
  );
  if (signal.aborted) return;

  const audioUrl = audioAsset ? urls.get(audioAsset.name) : undefined;
  if (audioUrl) {
    const peaks: Promise<Peaks | null> = peaksAsset
      ? readText(peaksAsset.name, signal).then(parsePeaks, () => null)
      : Promise.resolve(null);
    replace(playerSlot, createPlayer({ src: audioUrl, title, peaks, signal }));
  } else {
    replace(playerSlot, h("p", { class: "alert alert-error", role: "alert" }, failures[0] ?? "This song has no playable file."));
  }

  replace(
    downloadsSlot,
    h("h2", { id: "downloads-title" }, "Downloads"),
    h(
      "ul",
      { class: "downloads", "aria-labelledby": "downloads-title" },
      offered.map((asset) => {
        const url = urls.get(asset.name);
        const label = downloadLabel(asset);
        return h(
          "li",
          {},
          url
            ? h("a", { href: url, download: asset.fileName.split("/").pop() ?? "", "data-testid": `download-${ASSET_IDS[asset.kind] ?? "file"}`, "data-external": "" }, label)
            : h("span", {}, label, " (unavailable)"),
          h("span", { class: "muted" }, ` ${formatBytes(Number(asset.sizeBytes))}`),
        );
      }),
    ),
    h("p", { class: "hint" }, "Links stay valid for an hour; reload the page for fresh ones."),
  );
}
