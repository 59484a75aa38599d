// A whole sale in a real browser, through the pages only: an admin verifies two
// sellers, each lists a product with an image; a buyer signs up, searches,
// fills a cart from both sellers, checks out, is told how to pay and sees two
// orders; the admin marks the checkout paid and the buyer sees it paid; the
// sellers move the orders to delivered and the buyer returns one. Then what
// must be refused: a form without its CSRF token, another buyer's order page,
// and a checkout with a short item.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  launchBrowser,
  pngFile,
  screenshot,
  startServer,
} from "./harness.mjs";

let server;
let browser;
const files = mkdtempSync(join(tmpdir(), "marketplace-browser-files-"));

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A browser window of its own (its own cookies): one person. */
async function person() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => assert.fail(`a script error on ${page.url()}: ${e}`));
  return page;
}

const url = (path) => `${server.base}${path}`;

async function heading(page) {
  return (await page.getByRole("heading", { level: 1 }).first().textContent()).trim();
}

async function signUp(page, { email, role, name, store }) {
  await page.goto(url("/sign-up"));
  await page.getByRole("radio", { name: role === "seller" ? /^sell/ : /^buy/ }).check();
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("a long passphrase");
  if (name) await page.getByLabel(/Your name/).fill(name);
  if (store) await page.getByLabel(/Store name/).fill(store);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.waitForLoadState();
  assert.match(await page.locator(".flash").textContent(), /Welcome/);
}

async function signIn(page, email, password) {
  await page.goto(url("/sign-in"));
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForLoadState();
  assert.match(await page.locator(".flash").textContent(), /signed in/);
}

async function listProduct(page, { title, price, stock, colour }) {
  await page.goto(url("/seller/products/new"));
  await page.getByLabel("Title").fill(title);
  await page.getByLabel("Description").fill(`A ${title.toLowerCase()}, made by hand.`);
  await page.getByLabel(/^Price/).fill(price);
  await page.getByLabel("Units in stock").fill(String(stock));
  await page.getByRole("button", { name: "Save the product" }).click();
  await page.waitForLoadState();
  const image = pngFile(files, `${title.replace(/\W/g, "-")}.png`, 640, 480, colour);
  await page.getByLabel("Add an image").setInputFiles(image);
  await page.getByRole("button", { name: "Upload" }).click();
  await page.waitForLoadState();
  // The stored image is served and decodes in the browser.
  const img = page.locator('img[src*="/media/"]').first();
  await img.waitFor();
  assert.ok(await img.evaluate((el) => el.complete && el.naturalWidth > 0), "the image loads");
}

/** Moves the order `id` along with the seller's next-step buttons up to `last`. */
async function advance(page, id, steps) {
  await page.goto(url(`/seller/orders/${id}`));
  for (const step of steps) {
    await page.getByRole("button", { name: `Mark as ${step}` }).click();
    await page.waitForLoadState();
    assert.match(await page.locator("main").textContent(), new RegExp(step));
  }
}

/** The ids of the orders linked from the buyer's order history. */
async function orderIds(page) {
  await page.goto(url("/orders"));
  const hrefs = await page.locator('main a[href^="/orders/"]').evaluateAll((as) =>
    as.map((a) => a.getAttribute("href")),
  );
  return [...new Set(hrefs.map((h) => h.split("/")[2].split("?")[0]))];
}

const sellers = [
  { email: "ana@pottery.example", store: "Ana's Pottery", title: "Blue mug", price: "12.50", colour: [40, 80, 200] },
  { email: "ben@glass.example", store: "Ben's Glass", title: "Green mug", price: "8.00", colour: [40, 160, 80] },
];
const buyerEmail = "cleo@example.com";
let placed = [];

test("a whole sale, from verifying sellers to a return", async () => {
  const sellerPages = [];
  for (const s of sellers) {
    const page = await person();
    await signUp(page, { email: s.email, role: "seller", store: s.store });
    assert.match(await page.locator("main").textContent(), /pending|review/i);
    sellerPages.push(page);
  }
  await screenshot(sellerPages[0], "seller-pending");

  const admin = await person();
  await signIn(admin, ADMIN_EMAIL, ADMIN_PASSWORD);
  await admin.goto(url("/admin/sellers?status=pending"));
  for (const s of sellers) {
    await admin.getByRole("button", { name: `Verify ${s.store}` }).click();
    await admin.waitForLoadState();
  }
  await admin.goto(url("/admin/sellers?status=verified"));
  for (const s of sellers) assert.match(await admin.locator("main").textContent(), new RegExp(s.store));
  await screenshot(admin, "admin-sellers");

  for (const [i, s] of sellers.entries()) {
    const page = sellerPages[i];
    await page.goto(url("/seller"));
    assert.match(await page.locator("main").textContent(), /verified/i);
    await listProduct(page, { title: s.title, price: s.price, stock: 5, colour: s.colour });
  }
  await screenshot(sellerPages[0], "seller-product");

  const buyer = await person();
  await signUp(buyer, { email: buyerEmail, role: "buyer", name: "Cleo" });
  await buyer.goto(url("/"));
  await buyer.getByRole("searchbox", { name: "Search products" }).fill("mug");
  await buyer.getByRole("searchbox", { name: "Search products" }).press("Enter");
  await buyer.waitForLoadState();
  for (const s of sellers) await buyer.getByRole("link", { name: s.title }).first().waitFor();
  await screenshot(buyer, "storefront");

  for (const [i, s] of sellers.entries()) {
    await buyer.getByRole("link", { name: s.title }).first().click();
    await buyer.waitForLoadState();
    assert.equal(await heading(buyer), s.title);
    await buyer.getByLabel("Quantity").fill(String(i + 1));
    await buyer.getByRole("button", { name: "Add to cart" }).click();
    await buyer.waitForLoadState();
    await buyer.goBack();
    await buyer.goto(url("/?q=mug"));
  }
  await buyer.goto(url("/cart"));
  const cart = await buyer.locator("main").textContent();
  for (const s of sellers) assert.match(cart, new RegExp(s.store.replace("'", ".")));
  // One blue mug at 12.50 and two green ones at 8.00.
  assert.match(cart, /28\.50 USD/, "the cart's total is 12.50 + 2 × 8.00");
  await screenshot(buyer, "cart");

  await buyer.getByRole("link", { name: /checkout/i }).first().click();
  await buyer.waitForLoadState();
  await buyer.getByLabel("Recipient's name").fill("Cleo Buyer");
  await buyer.getByLabel("Street and number").fill("1 Harbour Road");
  await buyer.getByLabel("Postal code").fill("94105");
  await buyer.getByLabel("City").fill("San Francisco");
  await buyer.getByLabel("Country code").fill("US");
  await buyer.getByRole("button", { name: /Place the order/ }).click();
  await buyer.waitForLoadState();
  // The confirmation is the payment step: the manual provider's instructions,
  // quoting the checkout number, for the whole checkout.
  assert.match(await buyer.locator("#payment-amount").textContent(), /^28\.50 USD for the whole checkout/);
  assert.equal((await buyer.locator("#payment-status").textContent()).trim(), "Awaiting payment");
  const instructions = (await buyer.locator("#payment-instructions").textContent()).trim();
  const quoted = instructions.match(/^Pay 28\.50 USD on delivery, or by bank transfer quoting ([0-9a-f-]{36})\.$/);
  assert.ok(quoted, `the instructions quote the checkout number: ${instructions}`);
  placed = await orderIds(buyer);
  assert.equal(placed.length, 2, "one order per seller");
  await screenshot(buyer, "orders");

  // The transfer arrives: the admin finds the payment by the number it quotes
  // and marks it paid; the buyer sees both orders paid.
  await admin.goto(url("/admin/payments"));
  await admin.getByLabel("Checkout number").fill(quoted[1]);
  await admin.getByRole("button", { name: "Find the payment" }).click();
  await admin.waitForLoadState();
  assert.match(await heading(admin), /^Payment of checkout /);
  await admin.getByRole("button", { name: /^Mark paid/ }).click();
  await admin.waitForLoadState();
  assert.match(
    await admin.locator(".flash").textContent(),
    /marked paid: 28\.50 USD is captured for its 2 orders/,
  );
  assert.equal(await admin.getByRole("button", { name: /^Mark paid/ }).count(), 0, "paid once");
  await buyer.goto(url("/orders"));
  const payments = await buyer.locator("main tbody .badge-payment").allTextContents();
  assert.deepEqual(payments, ["Paid", "Paid"], "both orders are paid");
  await buyer.goto(url(`/orders/${placed[0]}`));
  assert.equal((await buyer.locator("#order-payment").textContent()).trim(), "Paid");

  // Each seller sees one order and moves it along to delivered.
  for (const page of sellerPages) {
    await page.goto(url("/seller/orders"));
    const links = page.locator('main a[href^="/seller/orders/"]');
    assert.equal(await links.count(), 1, "a seller sees its own order only");
    const id = (await links.first().getAttribute("href")).split("/")[3];
    assert.ok(placed.includes(id));
    await advance(page, id, ["accepted", "packed", "shipped", "delivered"]);
  }
  // Ben's two mugs earned 16.00, held while the buyer may still return them.
  await sellerPages[1].goto(url("/seller/money"));
  assert.equal((await sellerPages[1].locator("#pending").textContent()).trim(), "16.00 USD");

  // The buyer returns one of them.
  await buyer.goto(url(`/orders/${placed[0]}`));
  assert.match(await buyer.locator("main").textContent(), /delivered/);
  await buyer.getByRole("button", { name: "Request a return" }).click();
  await buyer.waitForLoadState();
  assert.match(await buyer.locator("main").textContent(), /return/i);
  await buyer.goto(url(`/orders/${placed[1]}`));
  assert.match(await buyer.locator("main").textContent(), /delivered/);
});

test("a form posted without its CSRF token is refused and changes nothing", async () => {
  const buyer = await person();
  await signIn(buyer, buyerEmail, "a long passphrase");
  await buyer.goto(url("/?q=blue"));
  await buyer.getByRole("link", { name: "Blue mug" }).first().click();
  await buyer.waitForLoadState();
  const form = buyer.locator("form", { has: buyer.getByRole("button", { name: "Add to cart" }) });
  await form.locator('input[name="csrf"]').evaluate((el) => el.remove());
  const [response] = await Promise.all([
    buyer.waitForNavigation(),
    buyer.getByRole("button", { name: "Add to cart" }).click(),
  ]);
  assert.equal(response.status(), 403);
  assert.match(await heading(buyer), /expired|did not come from this site/);
  await buyer.goto(url("/cart"));
  assert.doesNotMatch(await buyer.locator("main").textContent(), /Blue mug/, "nothing was added");
});

test("a buyer cannot open another buyer's order page", async () => {
  const other = await person();
  await signUp(other, { email: "dan@example.com", role: "buyer" });
  const response = await other.goto(url(`/orders/${placed[0]}`));
  assert.equal(response.status(), 404);
  assert.doesNotMatch(await other.locator("main").textContent(), /Harbour Road/);
});

test("a short item at checkout names the product and changes nothing", async () => {
  const buyer = await person();
  await signIn(buyer, buyerEmail, "a long passphrase");
  // Blue mug: 5 listed, 1 sold (its return is only requested): 4 left.
  await buyer.goto(url("/?q=blue"));
  await buyer.getByRole("link", { name: "Blue mug" }).first().click();
  await buyer.waitForLoadState();
  assert.match(await buyer.locator("main").textContent(), /4 left|4 in stock/);
  await buyer.getByLabel("Quantity").fill("4");
  await buyer.getByRole("button", { name: "Add to cart" }).click();
  await buyer.waitForLoadState();

  // Meanwhile the seller sells out: the stock drops to 1.
  const seller = await person();
  await signIn(seller, sellers[0].email, "a long passphrase");
  await seller.goto(url("/seller/products"));
  await seller.getByRole("link", { name: "Blue mug" }).first().click();
  await seller.waitForLoadState();
  await seller.getByLabel("Units in stock").fill("1");
  await seller.getByRole("button", { name: "Save changes" }).click();
  await seller.waitForLoadState();

  const before = await orderIds(buyer);
  await buyer.goto(url("/checkout"));
  await buyer.getByRole("radio", { name: /Harbour Road/ }).check();
  const [response] = await Promise.all([
    buyer.waitForNavigation(),
    buyer.getByRole("button", { name: /Place the order/ }).click(),
  ]);
  assert.equal(response.status(), 409);
  const message = await buyer.locator("main").textContent();
  assert.match(message, /Blue mug/, "the message names the product");
  assert.match(message, /1 left/, "and says what is left");
  await screenshot(buyer, "checkout-short");
  assert.deepEqual(await orderIds(buyer), before, "no order was placed");
  await seller.reload();
  assert.equal(await seller.getByLabel("Units in stock").inputValue(), "1", "the stock is unchanged");
});
