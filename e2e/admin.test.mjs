// Browser test of the administrators' pages: a signed link logs in, the
// locked-only filter, a bulk unlock through the confirm dialog carried out
// by a real worker, the recipients settings, the dev mailbox and the
// monitoring dashboard behind the operator's credentials. Screenshots go to
// e2e/screenshots/.
//
// Runs Debian's Chromium (/usr/bin/chromium) through playwright-core, and a
// Go server (admin/internal/e2eserver) against the local Postgres and Redis.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium } from "./chromium.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..");
const shots = join(here, "screenshots");
const evil = "<script>alert(1)</script>";

let server, env, browser, buildDir;

before(async () => {
  mkdirSync(shots, { recursive: true });
  buildDir = mkdtempSync(join(tmpdir(), "dormancy-e2e-"));
  const bin = join(buildDir, "e2eserver");
  execFileSync("go", ["build", "-o", bin, "./admin/internal/e2eserver"], { cwd: repo, stdio: "inherit" });
  server = spawn(bin, [], { cwd: repo, stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise((_, reject) => server.once("exit", (code) => reject(new Error(`e2eserver exited with ${code}`))));
  const lines = createInterface({ input: server.stdout });
  const first = new Promise((resolve) => lines.once("line", resolve));
  env = JSON.parse(await Promise.race([first, exited]));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const done = new Promise((resolve) => server.once("exit", resolve));
    server.stdin.end(); // the server stops and drops its database when stdin closes
    await done;
  }
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
});

// newPage opens a page that records every dialog and accepts it.
async function newPage(context) {
  const page = await context.newPage();
  page.dialogs = [];
  page.on("dialog", async (d) => {
    page.dialogs.push({ type: d.type(), message: d.message() });
    await d.accept();
  });
  return page;
}

const lockIcons = (page) => page.locator("table.employees .lock-icon");

test("expired and tampered signed links are refused", async () => {
  const context = await browser.newContext({ locale: "ja-JP" });
  const page = await newPage(context);
  for (const [name, link] of [["expired", env.expired], ["tampered", env.tampered]]) {
    const res = await page.goto(link);
    assert.equal(res.status(), 403, `${name} link`);
    await page.locator("p.message.error", { hasText: "このリンクは無効か、有効期限が切れています" }).waitFor();
    await page.screenshot({ path: join(shots, `01-${name}-link.png`), fullPage: true });
  }
  const res = await page.goto(env.base + "/admin/employees");
  assert.equal(res.status(), 401, "employee list without a session");
  await context.close();
});

test("an administrator filters to locked accounts and bulk-unlocks them", async () => {
  const context = await browser.newContext({ locale: "ja-JP", viewport: { width: 1280, height: 900 } });
  const page = await newPage(context);
  const res = await page.goto(env.login);
  assert.equal(res.status(), 200);
  assert.match(page.url(), /\/admin\/employees$/);
  await page.getByRole("heading", { name: "社員一覧" }).waitFor();
  assert.equal(await lockIcons(page).count(), 4, "three platform IDs and one email ID are locked");
  // The hostile name is text, not markup: it shows as typed and runs nothing.
  await page.locator("td.name", { hasText: evil }).waitFor();
  assert.equal(await page.locator("td.name script").count(), 0);
  await page.screenshot({ path: join(shots, "02-employees.png"), fullPage: true });

  await page.click("#filter-locked");
  await page.waitForURL(/locked=1/);
  assert.equal(await page.locator("table.employees tbody tr").count(), 4);
  assert.equal(await page.locator("td.name", { hasText: "田中 次郎" }).count(), 0, "active accounts are filtered out");
  await page.screenshot({ path: join(shots, "03-locked-only.png"), fullPage: true });

  // A platform ID's [ロック中] icon is its unlock: clicking it asks, then
  // unlocks that one row; an email ID's icon is a label, not a button.
  assert.equal(await page.locator("table.employees button.lock-icon").count(), 3);
  assert.equal(await page.locator("table.employees span.lock-icon").count(), 1);
  const row = page.locator("table.employees tbody tr", { has: page.locator("button.lock-icon") }).first();
  const rowName = (await row.locator("td.name").textContent()).trim();
  await Promise.all([page.waitForURL(/unlock=/), row.locator("button.lock-icon").click()]);
  const rowConfirm = page.dialogs.filter((d) => d.type === "confirm");
  assert.equal(rowConfirm.length, 1, "one confirm dialog for the row");
  assert.ok(rowConfirm[0].message.includes(rowName), `the dialog names ${rowName}: ${rowConfirm[0].message}`);
  await page.waitForURL((u) => !u.searchParams.has("unlock"), { timeout: 30000 });
  await page.waitForFunction(() => document.querySelectorAll("table.employees .lock-icon").length === 3, null, { timeout: 30000 });
  await page.screenshot({ path: join(shots, "04a-row-unlocked.png"), fullPage: true });

  // Bulk unlock of the rest behind the confirm dialog.
  await page.check("#select-all");
  assert.equal(await page.locator('input[name="ids"]:checked').count(), 2);
  await Promise.all([page.waitForURL(/unlock=/), page.click("#bulk-unlock")]);
  const confirms = page.dialogs.filter((d) => d.type === "confirm");
  assert.equal(confirms.length, 2, "one more confirm dialog");
  assert.match(confirms[1].message, /選択した 2 名のロックを解除しますか/);
  await page.screenshot({ path: join(shots, "04-unlock-requested.png"), fullPage: true });
  // The page waits for the worker, then reloads: the platform IDs' icons go,
  // the email ID's stays (it unlocks by email).
  await page.waitForURL((u) => !u.searchParams.has("unlock"), { timeout: 30000 });
  await page.waitForFunction(() => document.querySelectorAll("table.employees .lock-icon").length === 1, null, { timeout: 30000 });
  assert.equal(await page.locator("td.name", { hasText: "鈴木 一郎" }).count(), 1);
  await page.screenshot({ path: join(shots, "05-after-bulk-unlock.png"), fullPage: true });

  await page.click("#filter-all");
  await page.getByText("24:00 までにログインが必要").first().waitFor();
  await page.screenshot({ path: join(shots, "06-unlocked-until-midnight.png"), fullPage: true });

  // An employee's name opens that employee's lock history, in the
  // company's language and time zone: the administrator's unlock is there,
  // with who did it and until when.
  await Promise.all([page.waitForURL(/\/admin\/employees\/\d+\/history$/), page.locator("td.name a", { hasText: rowName }).click()]);
  await page.locator("h2.name", { hasText: rowName }).waitFor();
  const unlocked = page.locator('table.history tr[data-event-kind="unlocked"]');
  await unlocked.first().waitFor();
  assert.match(await unlocked.first().textContent(), /管理者がロックを解除/);
  assert.match(await unlocked.first().textContent(), /24:00|\d{4}-\d{2}-\d{2}/, "the deadline or the time is shown");
  await page.screenshot({ path: join(shots, "06b-lock-history.png"), fullPage: true });
  await page.goBack();
  assert.deepEqual(page.dialogs.filter((d) => d.type !== "confirm"), [], "no alert ran");
  await context.close();
});

test("an administrator chooses, confirms and registers the login notification recipients", async () => {
  const context = await browser.newContext({ locale: "ja-JP", viewport: { width: 1280, height: 900 } });
  const page = await newPage(context);
  assert.equal((await page.goto(env.login)).status(), 403, "a signed link opens one session only");
  assert.equal((await page.goto(env.login2)).status(), 200);
  assert.equal((await page.locator('nav a[href="/admin/recipients"]').textContent()).trim(), "ログイン通知先管理");
  await page.click('nav a[href="/admin/recipients"]');
  await page.getByRole("heading", { name: "ログイン通知先の設定" }).waitFor();
  await Promise.all([page.waitForURL(/choose=1/), page.click("#choose")]);
  await page.getByRole("heading", { name: "担当者を設定" }).waitFor();
  await page.getByLabel("田中 次郎").check();
  await page.screenshot({ path: join(shots, "07-recipients-choose.png"), fullPage: true });
  await Promise.all([page.waitForURL(/\/admin\/recipients\/confirm$/), page.click("#to-confirm")]);
  await page.getByText("以下の社員をログイン通知先として登録します").waitFor();
  assert.equal(await page.locator("ul.chosen li").count(), 2);
  await page.screenshot({ path: join(shots, "08-recipients-confirm.png"), fullPage: true });
  await Promise.all([page.waitForURL(/saved=1/), page.click("#register")]);
  await page.getByText("ログイン通知先を登録しました。").waitFor();
  assert.equal(await page.locator("ul.current li").count(), 2);
  await page.screenshot({ path: join(shots, "09-recipients-saved.png"), fullPage: true });
  await context.close();
});

test("the dev mailbox and the monitoring dashboard need the operator's credentials", async () => {
  const anonymous = await browser.newContext();
  for (const path of ["/monitoring/", "/monitoring/api/queues", "/dev/mailbox", "/metrics"]) {
    const res = await anonymous.request.get(env.base + path);
    assert.equal(res.status(), 401, path);
    assert.match(res.headers()["www-authenticate"] ?? "", /^Basic /, path);
  }
  await anonymous.close();

  const context = await browser.newContext({ httpCredentials: { username: env.operator.user, password: env.operator.password }, viewport: { width: 1280, height: 900 } });
  const op = await newPage(context);
  assert.equal((await op.goto(env.base + "/dev/mailbox")).status(), 200);
  await op.getByText("一定期間ログインをしていない社員がログインを試みました。").first().waitFor();
  const alert = op.locator("article.mail").filter({ has: op.locator("pre", { hasText: evil }) }).first();
  await alert.locator("summary").first().click();
  await alert.locator("pre", { hasText: evil }).waitFor();
  await alert.locator("summary").nth(1).click();
  await op.screenshot({ path: join(shots, "10-dev-mailbox.png"), fullPage: true });
  assert.equal((await op.goto(env.base + "/monitoring/")).status(), 200);
  await op.getByText("critical").first().waitFor({ timeout: 15000 });
  await op.screenshot({ path: join(shots, "11-monitoring.png"), fullPage: true });
  assert.deepEqual(op.dialogs, [], "no alert ran");
  await context.close();
});
