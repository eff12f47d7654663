// Shared helpers of the browser end-to-end scripts: real headless Chromium (Debian's
// /usr/bin/chromium, never a downloaded browser) driven by playwright-core against a
// running stack. tests/e2e/test_browser.py starts the stack and runs each script with:
//
//   GATEWAY_URL        the gateway, e.g. http://127.0.0.1:8000 (required)
//   PAYMENT_URL        payment-service, for PUT /internal/settings
//   INTERNAL_API_KEY   for /internal/* on the services
//   SCREENSHOT_DIR     where screenshots go (none are taken when unset)
//   CHROMIUM           the browser binary (default /usr/bin/chromium)
//   E2E_TIMEOUT_MS     how long to wait for anything (default 60000: the machine is shared)
//
// plus what each script needs (its header says). A script exits 0 when its scenario held,
// else it prints what went wrong (with the page's text and URL) and exits 1.

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

import { chromium } from 'playwright-core'

export const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS ?? 60_000)
export const DESKTOP = { width: 1280, height: 800 }
export const PHONE = { width: 390, height: 844 }

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

export function env(name, fallback) {
  const value = process.env[name] ?? fallback
  if (value === undefined || value === '') throw new Error(`${name} is not set`)
  return value
}

export const gateway = () => env('GATEWAY_URL').replace(/\/+$/, '')
export const appUrl = (path = '/') => `${gateway()}/app${path}`
/** A server-rendered (Jinja) page of the gateway. */
export const pageUrl = (path = '/') => `${gateway()}${path}`

export function log(...args) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...args)
}

/** Uncaught errors and CSP violations in a page fail the scenario. */
function watch(page, problems) {
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
  page.on('console', (message) => {
    if (message.type() !== 'error') return
    const text = message.text()
    if (/Content Security Policy/i.test(text)) problems.push(`CSP: ${text}`)
    else log(`console error (${page.url()}): ${text}`)
  })
}

export class Session {
  constructor(browser) {
    this.browser = browser
    this.problems = []
    this.pages = []
  }

  /** A page in a fresh context (no cookies); `javaScriptEnabled: false` for the pages that
   * must work without scripts. */
  async newPage({ viewport = DESKTOP, javaScriptEnabled = true } = {}) {
    const context = await this.browser.newContext({
      viewport,
      javaScriptEnabled,
      deviceScaleFactor: 1,
      locale: 'en-GB',
      timezoneId: 'UTC',
      reducedMotion: 'reduce',
    })
    context.setDefaultTimeout(TIMEOUT)
    const page = await context.newPage()
    watch(page, this.problems)
    this.pages.push(page)
    return page
  }

  /** A PNG of the viewport (or of `locator`) in SCREENSHOT_DIR, if that is set. */
  async screenshot(page, name, { locator, fullPage = false } = {}) {
    const dir = process.env.SCREENSHOT_DIR
    if (!dir) return
    mkdirSync(dir, { recursive: true })
    const path = join(dir, `${name}.png`)
    await page.evaluate(() => document.fonts.ready)
    // no blinking caret or hover state in the picture
    await page.mouse.move(0, 0)
    await page.evaluate(() => document.activeElement?.blur?.())
    if (locator) await locator.screenshot({ path, animations: 'disabled' })
    else await page.screenshot({ path, fullPage, animations: 'disabled' })
    log(`screenshot ${path}`)
  }
}

/** Run `scenario(session)` in a fresh Chromium; exit 1 with details when it fails. */
export async function run(name, scenario) {
  const started = Date.now()
  let browser
  let session
  let failed = false
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: TIMEOUT,
    })
    session = new Session(browser)
    await scenario(session)
    if (session.problems.length) {
      throw new Error(`the pages reported problems:\n  ${session.problems.join('\n  ')}`)
    }
    log(`${name}: passed in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  } catch (error) {
    failed = true
    console.error(`${name}: FAILED: ${error?.stack ?? error}`)
    for (const page of session?.pages ?? []) await describe(page)
  } finally {
    await browser?.close().catch(() => {})
  }
  process.exitCode = failed ? 1 : 0
}

async function describe(page) {
  if (page.isClosed()) return
  try {
    console.error(`--- page ${page.url()} ---`)
    console.error((await page.locator('body').innerText({ timeout: 5000 })).slice(0, 4000))
    const dir = process.env.SCREENSHOT_DIR
    if (dir) {
      const path = join(dir, `failure-${Date.now()}.png`)
      await page.screenshot({ path, fullPage: true, timeout: 10_000 })
      console.error(`(screenshot of the failure: ${path})`)
    }
  } catch (error) {
    console.error(`(could not describe the page: ${error})`)
  }
}

/** Change the payment simulation of the stack (success_rate 0..1, latency_ms). */
export async function paymentSettings(settings) {
  const response = await fetch(`${env('PAYMENT_URL').replace(/\/+$/, '')}/internal/settings`, {
    method: 'PUT',
    headers: {
      'Content-Type': 'application/json',
      'X-Internal-Api-Key': env('INTERNAL_API_KEY'),
    },
    body: JSON.stringify(settings),
  })
  if (response.status !== 200) {
    throw new Error(`PUT /internal/settings: HTTP ${response.status} ${await response.text()}`)
  }
  log('payment settings', JSON.stringify(settings))
}

/** A link of the header's main navigation. */
export function nav(page, name) {
  return page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true })
}

export function expect(condition, message) {
  if (!condition) throw new Error(`expectation failed: ${message}`)
}

export function uniqueEmail(prefix) {
  return `${prefix}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}@example.com`
}

/** Register through the app's form, then log in through the login form. */
export async function registerAndLogIn(page, email, password) {
  await page.goto(appUrl('/register'))
  await page.getByLabel('Email').fill(email)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Create account' }).click()
  await page.getByRole('heading', { name: 'Log in' }).waitFor()
  await page.getByText('Your account was created').waitFor()
  expect((await page.getByLabel('Email').inputValue()) === email, 'the email is filled in')
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.getByRole('heading', { name: 'Catalog' }).waitFor()
  await page.getByText(email).waitFor() // the header shows who is logged in
  log(`registered and logged in as ${email}`)
}

/** Find a product by searching the catalog, open its page, add `quantity` to the cart. */
export async function addToCartFromSearch(page, { query, productId, quantity }) {
  await page.goto(appUrl('/'))
  await page.getByLabel('Search products').fill(query)
  await page.getByRole('button', { name: 'Search' }).click()
  await page.waitForURL(/[?&]q=/)
  const link = page.locator(`a.product-link[href="/app/products/${productId}"]`)
  await link.waitFor()
  await link.click()
  await page.getByRole('button', { name: 'Add to cart' }).waitFor()
  await page.getByLabel('Quantity').fill(String(quantity))
  await page.getByRole('button', { name: 'Add to cart' }).click()
  await page.getByText(`Added. ${quantity} in your`).waitFor()
}

/** Wait until the order page shows `status` in its live status region. */
export async function waitForStatus(page, status) {
  await page.locator(`[data-testid="order-status"] [data-status="${status}"]`).waitFor()
  log(`order status ${status} on screen`)
}

/** Log in through the server-rendered /login form (the page we are on, or a fresh one);
 * the form sends us on to its `next`, or to the catalog. */
export async function logInToPages(page, email, password) {
  if (!new URL(page.url(), 'http://x').pathname.startsWith('/login')) {
    await page.goto(pageUrl('/login'))
  }
  await page.getByRole('heading', { name: 'Log in', exact: true }).waitFor()
  await page.getByLabel('Email').fill(email)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Log in', exact: true }).click()
  await page.waitForLoadState()
  const refused = page.locator('#login-error')
  if (await refused.count()) throw new Error(`logging in as ${email}: ${await refused.innerText()}`)
  // the header's log-out button names who is logged in
  await page.getByRole('button', { name: `Log out ${email}` }).waitFor()
  log(`logged in to the pages as ${email}`)
}
