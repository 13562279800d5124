// End-to-end test of Moat's dashboard in headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core). Started by crates/moat-cli/tests/dashboard.rs with a running node that
// has functions `snoop` (tp_kv, no grants, versions 1 and 2) and `shop` (a `[config]` key
// that is markup). Environment: MOAT_ADMIN, MOAT_GATEWAY, MOAT_TOKEN, MOAT_SCREENSHOT.
//
// 1. Log in with the admin token; see the deployed functions.
// 2. Trigger a denied request (snoop opens a bucket it was never granted) and watch the
//    denial and the invocation appear in the open page, without a reload.
// 3. A page on another site (localhost vs 127.0.0.1) and one on another origin of the same
//    site (another port) each auto-submit a rollback form to the dashboard: both are refused
//    with 403 and nothing changes.
// 4. The dashboard's own form (log out) is accepted.
// No dialog may open at any point (markup in values must never run).
import http from "node:http";
import { chromium } from "playwright-core";

const admin = need("MOAT_ADMIN");
const gateway = need("MOAT_GATEWAY");
const token = need("MOAT_TOKEN");
const screenshot = need("MOAT_SCREENSHOT");
const TIMEOUT = 15000;

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

function check(cond, what) {
  if (!cond) throw new Error(`e2e: ${what}`);
  console.log(`e2e: ✓ ${what}`);
}

async function activeVersion(name) {
  const r = await fetch(`${admin}/v1/functions/${name}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return (await r.json()).function.active_version;
}

// The attacker's pages: each auto-submits a state-changing form to the dashboard.
const evil = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html" });
  res.end(`<!doctype html><html><body>
<form id="f" method="post" action="${admin}/ui/functions/snoop/rollback">
<input type="hidden" name="csrf" value="${"0".repeat(64)}">
<input type="hidden" name="to" value="1">
</form>
<script>document.getElementById("f").submit();</script>
</body></html>`);
});
await new Promise((ok) => evil.listen(0, "127.0.0.1", ok));
const evilPort = evil.address().port;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const dialogs = [];
  page.on("dialog", async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  const cspViolations = [];
  page.on("console", (m) => {
    if (m.type() === "error") cspViolations.push(m.text());
  });

  // 1. Log in.
  await page.goto(`${admin}/ui/`);
  check(new URL(page.url()).pathname === "/ui/login", "an anonymous visit goes to the login form");
  await page.fill("input[name=token]", token);
  await Promise.all([page.waitForURL(`${admin}/ui/`), page.click("button[type=submit]")]);
  check(await page.isVisible("text=bootstrap-admin (admin)"), "logged in as the bootstrap admin");
  const cookies = await context.cookies(admin);
  const session = cookies.find((c) => c.name === "moat_session");
  check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");
  check(!(await page.evaluate(() => document.cookie)).includes("moat_session"), "page script cannot read the session cookie");
  const snoopRow = page.locator("table.functions tr[data-function=snoop]");
  await snoopRow.waitFor();
  check((await snoopRow.innerText()).includes("2 of 2"), "the deployed function snoop is listed, serving version 2 of 2");

  // The markup in shop's manifest shows as text and runs nothing.
  await page.goto(`${admin}/ui/functions/shop`);
  check(await page.isVisible("text=<script>alert('cfg')</script>"), "markup from a manifest is shown as text");

  // 2. Live: a denied request appears without a reload.
  await page.goto(`${admin}/ui/`);
  await page.waitForSelector("#live-status.ok");
  await page.evaluate(() => { window.__notReloaded = true; });
  const answer = await (await fetch(`${gateway}/snoop?bucket=orders&op=get&key=a`)).text();
  check(answer === "open error Error::AccessDenied", "the function was refused the bucket");
  const denial = page.locator("#security-events tr.live", { hasText: "kv:read.denied" });
  await denial.first().waitFor();
  check((await denial.first().innerText()).includes("bucket:orders"), "the denial appeared live in security events");
  const call = page.locator("#live-invocations tr", { hasText: "snoop" });
  await call.first().waitFor();
  check(await page.evaluate(() => window.__notReloaded === true), "the page was not reloaded");
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`e2e: screenshot ${screenshot}`);

  // 3. Cross-site and cross-origin form posts are refused and change nothing.
  for (const [what, url] of [
    ["cross-site (localhost -> 127.0.0.1)", `http://localhost:${evilPort}/`],
    ["same-site, cross-origin (another port)", `http://127.0.0.1:${evilPort}/`],
  ]) {
    const attack = await context.newPage();
    attack.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
    const posted = attack.waitForResponse((r) => r.url() === `${admin}/ui/functions/snoop/rollback`);
    await attack.goto(url);
    const r = await posted;
    check(r.status() === 403, `a ${what} form post is refused with 403`);
    await attack.close();
  }
  check((await activeVersion("snoop")) === 2, "the refused posts changed nothing (snoop still serves version 2)");
  check(dialogs.length === 0, `no dialog opened (${dialogs.join(", ")})`);

  // 4. A same-origin post from the dashboard itself works: log out (CSRF token and all).
  await page.bringToFront();
  await Promise.all([page.waitForURL(`${admin}/ui/login`), page.click("header button[type=submit]")]);
  await page.goto(`${admin}/ui/`);
  check(new URL(page.url()).pathname === "/ui/login", "after logging out, the dashboard asks for a token again");
  console.log("e2e: ok");
} catch (e) {
  failed = true;
  console.error(e && e.stack ? e.stack : String(e));
} finally {
  await browser.close();
  evil.close();
}
process.exit(failed ? 1 : 0);
