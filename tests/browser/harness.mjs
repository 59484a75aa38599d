// What every browser test needs: a marketplace-web server of its own on a
// fresh SQLite file, and Debian's Chromium driven by Playwright.
//
// MARKETPLACE_WEB_BIN names the server binary (default: the debug build under
// CARGO_TARGET_DIR, or ../../target). CHROMIUM names the browser (default
// /usr/bin/chromium). Screenshots go to SCREENSHOT_DIR (default
// docs/screenshots at the repository's root).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync, existsSync, writeFileSync } from "node:fs";
import { deflateSync as zlibDeflate } from "node:zlib";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "..", "..");

export const ADMIN_EMAIL = "admin@example.com";
export const ADMIN_PASSWORD = "admin passphrase";

function serverBinary() {
  if (process.env.MARKETPLACE_WEB_BIN) return process.env.MARKETPLACE_WEB_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(repo, "target");
  return join(target, "debug", "marketplace-web");
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Starts marketplace-web on a fresh SQLite file; resolves once it answers. */
export async function startServer() {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(`no marketplace-web binary at ${bin}: run \`cargo build -p marketplace-web\` first`);
  }
  const dir = mkdtempSync(join(tmpdir(), "marketplace-browser-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    RUST_LOG: "warn",
    DATABASE_URL: `sqlite://${join(dir, "shop.db")}`,
    MARKETPLACE_MEDIA_DIR: join(dir, "media"),
    MARKETPLACE_WEB_LISTEN: `127.0.0.1:${port}`,
    MARKETPLACE_ADMIN_EMAIL: ADMIN_EMAIL,
    MARKETPLACE_ADMIN_PASSWORD: ADMIN_PASSWORD,
    MAIL_DIR: join(dir, "mail"),
  };
  const child = spawn(bin, [], { env, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`marketplace-web exited:\n${log}`);
    try {
      const r = await fetch(`${base}/static/style.css`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`marketplace-web did not answer:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    dir,
    log: () => log,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
      if (/panicked/.test(log)) throw new Error(`marketplace-web panicked:\n${log}`);
    },
  };
}

/** Debian's Chromium, headless, with nothing reaching out to the network. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}

const shots = process.env.SCREENSHOT_DIR || join(repo, "docs", "screenshots");

/** Saves a screenshot of `page` as `name`.png. */
export async function screenshot(page, name) {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/** A solid-colour PNG of `width`×`height`, written to a file in `dir`. */
export function pngFile(dir, name, width, height, [r, g, b]) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (buf) => {
    let c = 0xffffffff;
    for (const byte of buf) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, "ascii");
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const row = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x++) row.set([r, g, b], 1 + x * 3);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlibDeflate(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
  const path = join(dir, name);
  writeFileSync(path, png);
  return path;
}
