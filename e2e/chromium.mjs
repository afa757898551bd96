// Debian's Chromium, as every browser test here launches it. Playwright's
// own browser download cannot reach its host from these machines, and the
// background-networking flags keep Chromium from dialling out at all.
import { chromium } from "playwright-core";

export function launchChromium() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}
