// End-to-end check of the Cadenza studio in a real browser (Chromium through
// playwright-core), against a running gateway that serves the built studio:
//
//   CADENZA_WEB_URL=http://127.0.0.1:8080 node e2e/studio.mjs
//
// Signs up a fresh user, generates a 10-second song with vocals, watches every
// stage complete live (no reload; the live stream is broken once on purpose and
// must resume by itself), plays the song, downloads the master through the
// page's link and checks its bytes, shares it, opens the gift page signed out in
// a phone-sized window (its waveform drawn from the storage's peaks file), then
// revokes the link and checks the page says so, and finally searches the song
// list by title on the server (found in any case, absent text, `?q=` kept) and
// reopens the song, whose watch must start after its status (no replay).
// On each page it visits (sign-up, song list, new song, the finished song, the
// gift page at 375 px, an unknown gift link) it runs axe-core (WCAG 2.0/2.1 A
// and AA rules, colour contrast included), injected from node_modules (nothing
// is fetched at run time); any serious or critical violation fails the test,
// and every violation, of any impact, goes to accessibility.json.
// Screenshots, the first page's navigation timing and the browser console go to
// CADENZA_TEST_OUTPUT (default ../test-output/web); a failed step adds
// failure.png. Exits non-zero, saying which step failed, on any failure.
//
// CHROMIUM names the browser (default /usr/bin/chromium: `apt-get install
// chromium`); CADENZA_E2E_GENERATION_TIMEOUT_MS the wait for the song (180 s).

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const webDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const base = (process.env.CADENZA_WEB_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "");
const out = resolve(webDir, process.env.CADENZA_TEST_OUTPUT ?? "../test-output/web");
const generationTimeout = Number(process.env.CADENZA_E2E_GENERATION_TIMEOUT_MS ?? 180_000);
const consoleLines = [];
const axePath = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
/** The rule sets axe runs: WCAG 2.0 and 2.1, levels A and AA. */
const axeTags = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];
/** Per page checked: its violations (any impact) and the rules axe could not decide. */
const accessibility = [];
let step = "starting";
/** The page in use, for a screenshot when a step fails. */
let current = null;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/**
 * Runs axe-core on the page as it stands and records what it finds under
 * `name`. Violations of serious or critical impact fail the test once every
 * page has been checked (assertAccessible), so one run reports them all.
 */
async function checkAccessibility(page, name) {
  // Evaluated through the DevTools protocol, not added as a <script>: the
  // studio's Content-Security-Policy refuses inline scripts, as it should.
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(await readFile(axePath, "utf8"));
  const result = await page.evaluate((tags) => window.axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations", "incomplete"] }), axeTags);
  const violations = result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    helpUrl: v.helpUrl,
    tags: v.tags,
    nodes: v.nodes.map((n) => ({ target: n.target, html: n.html, impact: n.impact, summary: n.failureSummary })),
  }));
  const incomplete = result.incomplete.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, summary: n.failureSummary })) }));
  accessibility.push({ page: name, url: page.url(), axe: result.testEngine.version, tags: axeTags, violations, incomplete });
}

/** Throws, listing rule, impact and first targets, on any serious or critical violation recorded. */
function assertAccessible() {
  const lines = [];
  for (const { page, violations } of accessibility) {
    for (const v of violations.filter((v) => v.impact === "serious" || v.impact === "critical")) {
      const targets = v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ");
      const more = v.nodes.length > 3 ? ` (+${v.nodes.length - 3} more)` : "";
      lines.push(`  ${page}: ${v.id} [${v.impact}] ${v.help}: ${targets}${more}`);
    }
  }
  check(lines.length === 0, `${lines.length} serious or critical accessibility violation${lines.length === 1 ? "" : "s"} (axe-core; all violations in accessibility.json):\n${lines.join("\n")}`);
}

async function writeAccessibility() {
  await writeFile(join(out, "accessibility.json"), JSON.stringify({ tags: axeTags, failOn: ["serious", "critical"], pages: accessibility }, null, 2) + "\n");
}

async function shot(page, name) {
  await page.screenshot({ path: join(out, `${name}.png`), fullPage: true });
}

function watchConsole(page, label) {
  page.on("console", (m) => consoleLines.push(`[${label}] ${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`[${label}] pageerror: ${e.message}`));
}

async function main() {
  await mkdir(out, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  try {
    await run(browser);
  } catch (e) {
    if (current) await shot(current, "failure").catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
}

async function run(browser) {
  const suffix = randomBytes(4).toString("hex");
  const email = `e2e-${Date.now()}-${suffix}@example.com`;
  const password = `pw-${randomBytes(9).toString("hex")}`;
  const title = `E2E song ${suffix}`;
  const prompt = `bright synth pop with a catchy chorus ${suffix}`;
  const message = `Happy birthday! (${suffix})`;

  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  current = page;
  watchConsole(page, "studio");

  step = "open the sign-up page";
  const response = await page.goto(`${base}/signup`, { waitUntil: "load" });
  check(response?.ok(), `GET ${base}/signup answered ${response?.status()}: is the gateway serving the built studio (CADENZA_WEB_DIR)?`);
  await page.getByRole("heading", { level: 1 }).waitFor();
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    return nav ? nav.toJSON() : null;
  });
  check(timing, "the browser reported no navigation timing");
  await writeFile(
    join(out, "timing.json"),
    JSON.stringify({ url: `${base}/signup`, domInteractive: timing.domInteractive, domContentLoadedEventEnd: timing.domContentLoadedEventEnd, loadEventEnd: timing.loadEventEnd, transferSize: timing.transferSize, navigation: timing }, null, 2),
  );

  step = "sign up";
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel(/I accept the terms/).check();
  await shot(page, "1-signup");
  await checkAccessibility(page, "sign-up");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.waitForURL(/\/projects$/).catch(async () => {
    const alert = await page.getByTestId("alert").textContent().catch(() => "");
    throw new Error(`sign-up did not reach the project list${alert ? `: the page says "${alert}"` : ""}`);
  });
  await page.getByRole("heading", { name: "Your songs" }).waitFor();
  await page.getByTestId("project-status").filter({ hasText: "No songs yet" }).waitFor();
  await shot(page, "2-projects");
  await checkAccessibility(page, "song list");

  step = "fill in a new song";
  await page.getByRole("navigation").getByRole("link", { name: "New song" }).click();
  await page.getByRole("heading", { name: "New song" }).waitFor();
  await page.getByLabel("Title (optional)").fill(title);
  await page.getByLabel("Describe the song").fill(prompt);
  await page.getByLabel("Duration (seconds)").fill("10");
  await page.getByLabel(/^Vocals/).check();
  // 10 s with vocals: 10 x credits_per_second x 1.5, shown before submitting.
  await page.getByTestId("cost").filter({ hasText: /costs \d+ credit/ }).waitFor();
  const costText = await page.getByTestId("cost").textContent();
  await page.getByTestId("limits").filter({ hasText: /Balance/ }).waitFor({ timeout: 10_000 }).catch(() => {
    throw new Error("the new-song page did not show the balance from UsageService.GetUsage");
  });
  await shot(page, "3-new-song");
  await checkAccessibility(page, "new song");

  step = "generate";
  await page.getByTestId("generate").click();
  await page.waitForURL(/\/projects\/[^/]+$/).catch(async () => {
    const alert = await page.getByTestId("alert").textContent().catch(() => "");
    throw new Error(`generating did not open the project page${alert ? `: the page says "${alert}"` : ""}`);
  });
  const projectUrl = page.url();
  // Marks this document: if the page reloads, the mark is gone.
  await page.evaluate(() => {
    window.__cadenzaE2eMark = true;
  });
  let loads = 0;
  page.on("load", () => (loads += 1));
  await page.getByTestId("stage-master").waitFor();
  await shot(page, "4-generating");

  step = "break the live stream while generating";
  // As a network drop would (the page's test hook aborts the stream): the page
  // must resume from the last event it saw, missing none and repeating none.
  await page.waitForFunction(
    () => document.querySelector('[data-testid="connection"]')?.dataset.state === "live" && Number(document.querySelector('[data-testid="stages"]')?.dataset.events) >= 2,
    null,
    { timeout: 60_000 },
  );
  await page.evaluate(() => window.dispatchEvent(new Event("cadenza:drop-watch")));

  step = "wait for every stage to complete, live";
  try {
    await page.waitForFunction(
      () => {
        const stages = [...document.querySelectorAll('[data-testid^="stage-"]')];
        const run = document.querySelector('[data-testid="run-state"]');
        return stages.length === 6 && stages.every((s) => s.dataset.state === "complete") && run?.dataset.state === "complete";
      },
      null,
      { timeout: generationTimeout, polling: 250 },
    );
  } catch {
    const states = await page.$$eval('[data-testid^="stage-"]', (els) => els.map((e) => `${e.dataset.testid}=${e.dataset.state}`).join(", "));
    const run = await page.getByTestId("run-state").textContent().catch(() => "?");
    throw new Error(`not every stage completed within ${generationTimeout / 1000} s: run "${run}", stages ${states}`);
  }
  check(loads === 0 && (await page.evaluate(() => window.__cadenzaE2eMark === true)), "the project page reloaded while the song was generating");
  const watchStats = await page.getByTestId("stages").evaluate((el) => ({ events: Number(el.dataset.events), repeats: Number(el.dataset.repeats), reconnects: Number(el.dataset.reconnects) }));
  check(watchStats.events > 0, "the project page applied no stage events from WatchProject");
  check(watchStats.reconnects >= 1, "the live stream did not resume after it was broken");
  check(await page.getByTestId("cancel").isHidden(), "Cancel is still offered for a finished song");
  check(await page.getByTestId("regenerate").isVisible(), "Regenerate is not offered for a finished song");

  step = "play the song";
  const audio = page.getByTestId("audio");
  await audio.waitFor({ state: "attached" });
  await page.getByTestId("play").click();
  await page
    .waitForFunction(() => {
      const a = document.querySelector('[data-testid="audio"]');
      return a && Number.isFinite(a.duration) && a.duration > 9 && a.currentTime > 0;
    }, null, { timeout: 20_000 })
    .catch(async () => {
      const state = await audio.evaluate((a) => `duration=${a.duration} currentTime=${a.currentTime} error=${a.error?.code ?? "none"} src=${a.currentSrc.slice(0, 80)}`);
      throw new Error(`the song did not play: ${state}`);
    });
  const t0 = await audio.evaluate((a) => a.currentTime);
  await page.waitForTimeout(1500);
  const t1 = await audio.evaluate((a) => a.currentTime);
  const duration = await audio.evaluate((a) => a.duration);
  check(t1 > t0, `playback did not advance (currentTime ${t0} then ${t1})`);
  const waveformPeaks = await peaksDrawn(page, "project page");
  await shot(page, "5-complete");
  await checkAccessibility(page, "finished song");

  step = "download the master";
  const link = page.getByTestId("download-master");
  await link.waitFor();
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: 30_000 }), link.click()]);
  const bytes = await readFile(await download.path());
  check(bytes.subarray(0, 4).toString("latin1") === "RIFF" && bytes.subarray(8, 12).toString("latin1") === "WAVE", `the master download is not a WAV file (starts with ${JSON.stringify(bytes.subarray(0, 12).toString("latin1"))})`);
  check(bytes.length > 100_000, `the master download is only ${bytes.length} bytes`);
  check(page.url() === projectUrl, "downloading navigated away from the project page");

  step = "create a share link";
  await page.getByLabel("Message for the listener (optional)").fill(message);
  await page.getByTestId("create-share").click();
  const shareInput = page.getByTestId("share-url");
  await shareInput.waitFor().catch(async () => {
    const alert = await page.getByTestId("share").getByTestId("alert").textContent().catch(() => "");
    throw new Error(`no share link appeared${alert ? `: the page says "${alert}"` : ""}`);
  });
  const shareUrl = await shareInput.inputValue();
  check(new URL(shareUrl).pathname.startsWith("/s/"), `unexpected share address ${shareUrl}`);
  await shot(page, "6-shared");
  await checkAccessibility(page, "finished song, shared");

  step = "open the gift page signed out, phone-sized";
  const guest = await browser.newContext({ viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true });
  guest.setDefaultTimeout(30_000);
  const gift = await guest.newPage();
  current = gift;
  watchConsole(gift, "gift");
  await gift.goto(shareUrl, { waitUntil: "load" });
  await gift.getByRole("heading", { level: 1, name: title }).waitFor().catch(async () => {
    const error = await gift.getByTestId("gift-error").textContent().catch(() => "");
    throw new Error(`the gift page did not show the song's title${error ? `: it says "${error}"` : ""}`);
  });
  const statement = await gift.getByTestId("ai-statement").textContent();
  check(/generated by AI/i.test(statement ?? ""), `the gift page lacks the AI statement (found "${statement}")`);
  check((await gift.getByTestId("gift-message").textContent()) === message, "the gift page does not show the sender's message");
  await gift
    .waitForFunction(() => {
      const a = document.querySelector('[data-testid="audio"]');
      return a && Number.isFinite(a.duration) && a.duration > 9;
    }, null, { timeout: 20_000 })
    .catch(() => {
      throw new Error("the gift page's player did not load the song");
    });
  const giftPeaks = await peaksDrawn(gift, "gift page");
  const giftText = await gift.locator("body").innerText();
  check(!giftText.includes(email), "the gift page shows the owner's email");
  check(!giftText.includes(prompt), "the gift page shows the prompt");
  const overflow = await gift.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the gift page is ${overflow}px wider than a 375px screen`);
  await shot(gift, "7-gift-375px");
  await checkAccessibility(gift, "gift (375 px)");

  step = "revoke the link and see the gift page say so";
  await page.getByTestId("share-links").getByRole("button", { name: "Revoke" }).first().click();
  await page.getByTestId("share-links").getByText(/Revoked/).first().waitFor();
  await gift.reload({ waitUntil: "load" });
  const revoked = await gift.getByTestId("gift-error").textContent();
  check(/revoked/i.test(revoked ?? ""), `a revoked link's page says "${revoked}" instead of saying it was revoked`);
  await gift.goto(`${base}/s/no-such-token-${suffix}`, { waitUntil: "load" });
  const unknown = await gift.getByTestId("gift-error").textContent();
  check(/No song is shared at this address/.test(unknown ?? ""), `an unknown link's page says "${unknown}"`);
  await shot(gift, "8-gift-unknown");
  await checkAccessibility(gift, "unknown gift link");
  await guest.close();
  current = page;

  step = "search the song list by title";
  await page.getByRole("navigation").getByRole("link", { name: "Your songs" }).click();
  await page.getByRole("heading", { name: "Your songs" }).waitFor();
  await page.getByTestId("project-item").first().waitFor();
  const search = page.getByRole("searchbox", { name: "Search by title" });
  // Part of the title in another case: the server's search ignores case.
  const part = `SONG ${suffix.toUpperCase()}`;
  await search.fill(part);
  await listed(page, part, 1);
  check((await page.getByTestId("project-item").first().getByRole("link").textContent()) === title, "searching for part of the title did not list the song");
  check(new URL(page.url()).searchParams.get("q") === part, `the search is not in the address (${page.url()})`);
  await shot(page, "9-search-found");
  const absent = `no such title ${suffix}`;
  await search.fill(absent);
  await listed(page, absent, 0);
  await page.getByTestId("project-status").filter({ hasText: `No songs have “${absent}” in their title.` }).waitFor();
  await shot(page, "10-search-empty");
  // The search survives a reload through `?q=`.
  await page.reload({ waitUntil: "load" });
  await page.getByTestId("project-status").filter({ hasText: /No songs have/ }).waitFor();
  check((await search.inputValue()) === absent, "the search box lost its text on reload");
  await search.fill("");
  await listed(page, "", 1);
  check(new URL(page.url()).search === "", `clearing the search left ${page.url()}`);

  step = "reopen the finished song: the watch starts where the status ends";
  await page.getByTestId("project-item").first().getByRole("link").click();
  await page.waitForURL(projectUrl);
  await page.waitForFunction(() => document.querySelector('[data-testid="connection"]')?.dataset.state === "live", null, { timeout: 20_000 });
  check((await page.getByTestId("run-state").getAttribute("data-state")) === "complete", "the reopened song is not shown complete");
  await page.waitForTimeout(500);
  const replayed = Number(await page.getByTestId("stages").getAttribute("data-events"));
  check(replayed === 0, `WatchProject replayed ${replayed} old events instead of starting after ProjectStatus.last_event_id`);

  step = "accessibility (axe-core) of every page visited";
  assertAccessible();

  step = "nothing the studio needed was refused by its Content-Security-Policy";
  const refused = consoleLines.filter((l) => l.includes("Content Security Policy"));
  check(refused.length === 0, `the CSP refused what the studio loads:\n${refused.join("\n")}`);

  console.log(
    JSON.stringify({
      ok: true,
      user: email,
      project: projectUrl,
      cost: costText,
      watch: watchStats,
      waveformPeaks,
      giftPeaks,
      songSeconds: duration,
      masterBytes: bytes.length,
      shareUrl,
      domInteractiveMs: Math.round(timing.domInteractive),
      accessibility: accessibility.map((a) => `${a.page}: ${a.violations.length} violation(s)`),
      loadEventEndMs: Math.round(timing.loadEventEnd),
      output: out,
    }),
  );
  await context.close();
  current = null;
}

/** Waits for the player's waveform to have peaks to draw; returns how many. */
async function peaksDrawn(page, where) {
  const wave = page.getByTestId("waveform");
  await wave.waitFor();
  await page.waitForFunction(() => document.querySelector('[data-testid="waveform"]')?.dataset.peaks !== undefined, null, { timeout: 20_000 }).catch(() => {
    throw new Error(`the ${where}'s waveform never got its peaks`);
  });
  const peaks = Number(await wave.getAttribute("data-peaks"));
  check(peaks > 0, `the ${where}'s waveform is flat: no peaks (see the browser console)`);
  return peaks;
}

/** Waits until the song list shows the result of searching for `query`, and `count` songs. */
async function listed(page, query, count) {
  await page
    .waitForFunction(
      ([q, n]) => {
        const list = document.querySelector('[data-testid="project-list"]');
        return list?.dataset.query === q && list.getAttribute("aria-busy") === "false" && list.querySelectorAll('[data-testid="project-item"]').length === n;
      },
      [query.trim(), count],
      { timeout: 10_000 },
    )
    .catch(async () => {
      const status = await page.getByTestId("project-status").textContent().catch(() => "");
      throw new Error(`searching for "${query}" did not list ${count} song${count === 1 ? "" : "s"}; the page says "${status}"`);
    });
}

main()
  .then(async () => {
    await writeFile(join(out, "console.log"), consoleLines.join("\n") + "\n");
    await writeAccessibility();
    console.log("studio e2e: 1 passed, 0 failed");
  })
  .catch(async (e) => {
    await mkdir(out, { recursive: true }).catch(() => {});
    await writeFile(join(out, "console.log"), consoleLines.join("\n") + "\n").catch(() => {});
    await writeAccessibility().catch(() => {});
    console.error(`studio e2e FAILED at step "${step}": ${e?.message ?? e}`);
    if (consoleLines.length) console.error(`browser console (last lines):\n${consoleLines.slice(-15).join("\n")}`);
    console.log("studio e2e: 0 passed, 1 failed");
    process.exitCode = 1;
  });
