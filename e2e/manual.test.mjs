// Browser end-to-end of the manual's flows through `dormancy dev`: the demo
// host platform, the worker, the scheduler, the admin pages and the dev
// mailbox in one process, driven by Debian's Chromium. Time moves through
// the dev clock, never by waiting. Screenshots go to e2e/screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { createServer } from "node:net";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { launchChromium } from "./chromium.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..");
const shots = join(here, "screenshots");
const password = "demo-pass";
const desktopUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36";
const iphoneUA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

let dev, browser, buildDir, host, adminBase, redisDB, dbName;
const claimPrefix = "dormancy:test:redis-db:"; // the key internal/testenv claims Redis DBs with

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function redis(...args) {
  return execFileSync("redis-cli", ["-h", "127.0.0.1", ...args], { encoding: "utf8" }).trim();
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  for (let n = 1; n <= 15 && !redisDB; n++) {
    if (redis("-n", "0", "SET", claimPrefix + n, String(process.pid), "NX", "EX", "1800") === "OK") redisDB = n;
  }
  assert.ok(redisDB, "no free Redis test DB");
  redis("-n", String(redisDB), "FLUSHDB");
  dbName = "dormancy_e2e_manual_" + randomBytes(5).toString("hex");
  buildDir = mkdtempSync(join(tmpdir(), "dormancy-dev-"));
  const bin = join(buildDir, "dormancy");
  execFileSync("go", ["build", "-o", bin, "./cmd/dormancy"], { cwd: repo, stdio: "inherit" });
  const [hostPort, adminPort] = [await freePort(), await freePort()];
  host = `http://127.0.0.1:${hostPort}`;
  adminBase = `http://127.0.0.1:${adminPort}`;
  dev = spawn(bin, ["dev"], {
    cwd: repo,
    stdio: ["ignore", "pipe", "inherit"],
    env: {
      ...process.env,
      DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${dbName}?sslmode=disable`,
      REDIS_URL: `redis://127.0.0.1:6379/${redisDB}`,
      PUBLIC_BASE_URL: host,
      ADMIN_ADDR: `127.0.0.1:${adminPort}`,
      RESEND_API_KEY: "",
      LOG_LEVEL: "warn",
      WORKER_TASK_CHECK_INTERVAL: "20ms",
    },
  });
  const exited = new Promise((_, reject) => dev.once("exit", (code) => reject(new Error(`dormancy dev exited with ${code}`))));
  const lines = createInterface({ input: dev.stdout });
  const ready = new Promise((resolve) => lines.on("line", (l) => { if (l.includes("dormancy dev is running")) resolve(); }));
  await Promise.race([ready, exited]);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (dev && dev.exitCode === null) {
    const done = new Promise((resolve) => dev.once("exit", resolve));
    dev.kill("SIGINT"); // Ctrl-C: everything stops cleanly
    const code = await done;
    assert.equal(code, 0, "dormancy dev did not stop cleanly on Ctrl-C");
  }
  if (dbName) execFileSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-qc", `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`]);
  if (redisDB) { redis("-n", String(redisDB), "FLUSHDB"); redis("-n", "0", "DEL", claimPrefix + redisDB); }
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
});

async function context(ua = desktopUA) {
  const ctx = await browser.newContext({ locale: "ja-JP", userAgent: ua, viewport: { width: 1100, height: 800 } });
  ctx.dialogs = [];
  ctx.on("page", (p) => p.on("dialog", async (d) => { ctx.dialogs.push(d.message()); await d.accept(); }));
  return ctx;
}

async function login(page, loginID, { remember = false } = {}) {
  await page.goto(host + "/login");
  await page.fill("#login_id", loginID);
  await page.fill("#password", password);
  if (remember) await page.check("#remember");
  await page.click("#submit");
}

// clock moves the dev clock and returns its local time, "2026/11/26 10:00:00 JST".
async function clock(move) {
  const res = await fetch(host + "/dev/clock", {
    method: move ? "POST" : "GET",
    headers: { Accept: "application/json", "Content-Type": "application/x-www-form-urlencoded" },
    body: move ? new URLSearchParams({ move }) : undefined,
  });
  assert.equal(res.status, 200, `dev clock ${move}`);
  return (await res.json()).local;
}

// mails reads the dev mailbox, newest first, as the operator.
async function mails() {
  const res = await fetch(adminBase + "/dev/mailbox", { headers: { Authorization: "Basic " + Buffer.from("dev:dev").toString("base64") } });
  assert.equal(res.status, 200);
  const html = await res.text();
  const out = [];
  for (const m of html.matchAll(/<article class="mail"[\s\S]*?<\/article>/g)) {
    const a = m[0];
    const dd = [...a.matchAll(/<dd>([\s\S]*?)<\/dd>/g)].map((x) => x[1]);
    out.push({
      subject: unescape(a.match(/<h2 class="subject">([\s\S]*?)<\/h2>/)[1]),
      to: unescape(dd[0]),
      kind: unescape(dd[2]),
      text: unescape((a.match(/<pre>([\s\S]*?)<\/pre>/) || ["", ""])[1]),
    });
  }
  return out;
}

function unescape(s) {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&#34;/g, '"').replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
}

// waitForMail polls the dev mailbox until pred matches n mails: the worker
// sends asynchronously, in tens of milliseconds.
async function waitForMail(pred, n = 1) {
  const deadline = Date.now() + 15000;
  for (;;) {
    const found = (await mails()).filter(pred);
    if (found.length >= n) return found;
    if (Date.now() > deadline) assert.fail(`mailbox: ${found.length} of ${n} expected mails after 15 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function reloadUntil(page, selector, pred, what) {
  const deadline = Date.now() + 15000;
  for (;;) {
    const text = await page.locator(selector).innerText();
    if (pred(text)) return text;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(text)} after 15 s`);
    await new Promise((r) => setTimeout(r, 150));
    await page.reload();
  }
}

const lockSentence = "一定期間ログインがなかったため、セキュリティ上の理由によりアカウントをロックしました";
const verifySubject = "【本人確認】アカウントロックの解除について";
const alertSubject = "一定期間ログインをしていない社員がログインを試みました。";

test("flow 1: a dormant email ID verifies itself by email; the link dies after 24 hours", async () => {
  const ctx = await context();
  const page = await ctx.newPage();
  await login(page, "tanaka@demo.example");
  await page.locator("#lock-message", { hasText: lockSentence }).waitFor();
  await page.locator("#email-sent").waitFor();
  await page.screenshot({ path: join(shots, "manual-01-email-id-locked.png"), fullPage: true });

  const [mail] = await waitForMail((m) => m.to === "tanaka@demo.example" && m.subject === verifySubject);
  assert.match(mail.text, /※URLの有効期限は、24時間になります。/);
  const link = mail.text.match(/http:\/\/\S+\/verify\?token=[A-Za-z0-9_-]+/)[0];
  const op = await browser.newContext({ httpCredentials: { username: "dev", password: "dev" }, viewport: { width: 1100, height: 900 } });
  const box = await op.newPage();
  await box.goto(adminBase + "/dev/mailbox");
  await box.screenshot({ path: join(shots, "manual-02-dev-mailbox.png") });
  await op.close();

  await page.goto(link);
  await page.locator("#verify-notice").waitFor();
  await page.screenshot({ path: join(shots, "manual-03-verification-landing.png"), fullPage: true });
  await page.fill("#login_id", "tanaka@demo.example");
  await page.fill("#password", password);
  await page.click("#submit");
  const today = (await clock()).slice(0, 10);
  const date = await page.locator("#login-date").innerText();
  assert.ok(date.startsWith(today), `login date ${date}, want today ${today}`);
  await page.screenshot({ path: join(shots, "manual-04-profile-after-verification.png"), fullPage: true });

  // Another dormant email ID: its link is refused after +25 h, and a new
  // attempt sends a new email.
  await login(page, "ito@demo.example");
  await page.locator("#lock-message").waitFor();
  const [first] = await waitForMail((m) => m.to === "ito@demo.example" && m.subject === verifySubject);
  const oldLink = first.text.match(/http:\/\/\S+\/verify\?token=[A-Za-z0-9_-]+/)[0];
  await clock("+25h");
  await page.goto(oldLink);
  await page.fill("#login_id", "ito@demo.example");
  await page.fill("#password", password);
  await page.click("#submit");
  await page.locator("#error", { hasText: "有効期限（24時間）が切れています" }).waitFor();
  await page.screenshot({ path: join(shots, "manual-05-expired-link.png"), fullPage: true });
  await login(page, "ito@demo.example");
  await page.locator("#lock-message").waitFor();
  const both = await waitForMail((m) => m.to === "ito@demo.example" && m.subject === verifySubject, 2);
  assert.notEqual(both[0].text, both[1].text, "the new email carries a new link");
  await ctx.close();
});

test("flow 2: a platform ID asks an administrator, who bulk-unlocks; the unlock lasts until local midnight", async () => {
  const ctx = await context();
  const page = await ctx.newPage();
  await login(page, "suzuki01");
  await page.locator("#lock-message", { hasText: lockSentence }).waitFor();
  const admins = await page.locator("#administrators li").allInnerTexts();
  assert.deepEqual(admins.sort(), ["システム部　情報 三郎さん", "管理部　管理 次郎さん", "総務部　総務 花子さん"].sort());
  await page.screenshot({ path: join(shots, "manual-06-platform-id-locked.png"), fullPage: true });

  // The administrator logs in at the host and follows its link into the
  // employee list (a signed link that becomes a session).
  const adminCtx = await context();
  const ap = await adminCtx.newPage();
  await login(ap, "kanri01");
  await ap.click("#employee-list");
  await ap.locator("table.employees").waitFor();
  await ap.click("#filter-locked");
  await ap.locator("tr.locked", { hasText: "鈴木 二郎" }).waitFor();
  await ap.locator("tr.locked", { hasText: "高橋 四郎" }).waitFor();
  await ap.screenshot({ path: join(shots, "manual-07-employee-list-locked.png"), fullPage: true });
  await ap.check("#select-all");
  await ap.click("#bulk-unlock");
  assert.ok(adminCtx.dialogs.some((m) => m.length > 0), "no confirm dialog before the bulk unlock");
  await ap.goto(ap.url().replace(/\?.*$/, ""));
  await reloadUntil(ap, "table.employees", (t) => !/ロック中/.test(t.split("\n").filter((l) => /鈴木|高橋/.test(l)).join("\n")), "lock icons after the bulk unlock");
  await ap.screenshot({ path: join(shots, "manual-08-after-bulk-unlock.png"), fullPage: true });

  // Suzuki logs in the same day: allowed.
  await login(page, "suzuki01");
  await page.locator("#login-date").waitFor();
  // Takahashi does not; after local midnight his unlock has lapsed.
  await clock("00:01");
  const phone = await context(iphoneUA);
  const pp = await phone.newPage();
  await login(pp, "takahashi01");
  await pp.locator("#lock-message", { hasText: lockSentence }).waitFor();
  await pp.locator("#administrators").waitFor();
  await pp.screenshot({ path: join(shots, "manual-09-relocked-after-midnight.png"), fullPage: true });
  await Promise.all([ctx.close(), adminCtx.close(), phone.close()]);
});

test("flow 3: each login notification recipient is alerted with name, local time, IP and device kind", async () => {
  const about = async (name) => (await waitForMail((m) => m.to === "soumu@demo.example" && m.subject === alertSubject && m.text.includes(`氏名：${name}`)))[0];
  const pc = await about("田中 一郎");
  assert.ok(pc, "no alert about 田中 一郎");
  assert.match(pc.text, /ログイン日時：\d{4}\/\d{2}\/\d{2} \d{2}:\d{2} JST/);
  assert.match(pc.text, /IPアドレス：127\.0\.0\.1/);
  assert.match(pc.text, /種別：PC/);
  const phone = await about("高橋 四郎");
  assert.ok(phone, "no alert about 高橋 四郎");
  assert.match(phone.text, /種別：スマホ/);
  assert.match(phone.text, /退職処理を行ってください/);
});

test("flow 4: a saved login keeps the old login date", async () => {
  const ctx = await context();
  const page = await ctx.newPage();
  await login(page, "yamamoto@demo.example", { remember: true });
  const today = (await clock()).slice(0, 10);
  const first = await reloadUntil(page, "#login-date", (t) => t.startsWith(today), "login date after a password login");
  await page.click("#logout");
  await clock("+2d");
  await page.goto(host + "/"); // the saved login
  await page.locator("#login-date").waitFor();
  for (let i = 0; i < 3; i++) { // the attempt is processed within milliseconds; look a few times
    await new Promise((r) => setTimeout(r, 200));
    await page.reload();
    assert.equal(await page.locator("#login-date").innerText(), first, "a saved login moved the login date");
  }
  await page.screenshot({ path: join(shots, "manual-10-remembered-login.png"), fullPage: true });
  await ctx.close();
});
