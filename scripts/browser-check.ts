// Opens a report page in headless Chromium (Debian's /usr/bin/chromium) and checks that every
// image loaded and that nothing is wider than the page; saves a full-page screenshot.
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const chromiumAvailable = () => existsSync(CHROMIUM);

export interface PageCheck {
  images: number;
  broken: string[];
  overflowing: string[];
  pageWidth: number;
  viewportWidth: number;
  headings: string[];
}

export async function checkPage(htmlFile: string, screenshot: string): Promise<PageCheck> {
  // The flags keep Chromium off the network, which this machine does not have.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(pathToFileURL(htmlFile).href, { waitUntil: 'load' });
    const result = await page.evaluate(() => {
      const images = Array.from(document.images);
      const viewportWidth = document.documentElement.clientWidth;
      return {
        images: images.length,
        broken: images.filter((img) => !img.complete || img.naturalWidth === 0).map((img) => img.alt),
        overflowing: Array.from(document.body.querySelectorAll('*'))
          .filter((el) => el.getBoundingClientRect().right > viewportWidth + 1)
          .map((el) => `${el.tagName.toLowerCase()}${el.getAttribute('alt') ? ` ${el.getAttribute('alt')}` : ''}`),
        pageWidth: document.documentElement.scrollWidth,
        viewportWidth,
        headings: Array.from(document.querySelectorAll('h2')).map((h) => h.textContent ?? ''),
      };
    });
    await page.screenshot({ path: screenshot, fullPage: true });
    return result;
  } finally {
    await browser.close();
  }
}
