/**
 * Drives the webview in headless Chromium: opens the harness page, sends protocol messages as
 * the host would, and reads back notifications, replies and pixels.
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import { openTensorFile } from '../../src/engine/formats/tensorFile';
import { MemorySource } from '../../src/engine/io';
import type { WebviewApi } from '../../src/protocol';
import { HarnessServer } from './server';

/** Debian's Chromium (Playwright's own browser download is not reachable here). */
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--enable-unsafe-webgpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface PanelOptions {
  /** Leave out --enable-unsafe-webgpu (WebGPU then has no adapter). */
  readonly withoutWebGpu?: boolean;
  readonly viewport?: { width: number; height: number };
  /** More Chromium flags (the memory benchmark adds --js-flags=--expose-gc). */
  readonly extraArgs?: readonly string[];
}

export class Panel {
  /** Console errors and page errors, for the tests to assert there were none. */
  readonly errors: string[] = [];

  private constructor(readonly browser: Browser, readonly page: Page, readonly server: HarnessServer) {}

  static async open(options: PanelOptions = {}): Promise<Panel> {
    const server = await HarnessServer.start();
    const args = [...(options.withoutWebGpu ? CHROMIUM_ARGS.filter((a) => a !== '--enable-unsafe-webgpu') : CHROMIUM_ARGS), ...(options.extraArgs ?? [])];
    const browser = await chromium.launch({ executablePath: CHROMIUM, args });
    const page = await browser.newPage({ viewport: options.viewport ?? { width: 1400, height: 1000 } });
    const panel = new Panel(browser, page, server);
    page.on('pageerror', (e) => panel.errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') panel.errors.push(`console: ${m.text()}`);
    });
    await page.goto(server.origin + '/');
    await panel.waitForNotification('ready');
    return panel;
  }

  /** Sends a request (params built in Node, ArrayBuffers included) and returns the reply, tensors as number arrays, bytes as base64. */
  async request<M extends keyof WebviewApi['requests']>(method: M, params: WebviewApi['requests'][M]['params']): Promise<Plain<WebviewApi['requests'][M]['result']>> {
    const url = params === null ? null : this.server.offer(params);
    // Callbacks passed to page.evaluate declare no named functions: tsx would wrap them in a
    // __name() helper that does not exist in the page.
    return this.page.evaluate(([m, u]) => (window as unknown as { fakeHost: { requestPlain(m: string, u: string | null): Promise<unknown> } }).fakeHost.requestPlain(m, u), [method, url] as const) as Promise<Plain<WebviewApi['requests'][M]['result']>>;
  }

  /** A view's .npy export (exportView), read back as float32. */
  async exportedNpy(view: string): Promise<{ shape: readonly number[]; data: Float32Array }> {
    const reply = await this.request('exportView', { kind: 'npy', view });
    const store = await openTensorFile(new MemorySource(reply.suggestedName, new Uint8Array(Buffer.from(reply.bytes, 'base64'))));
    return (await store.readFloat(store.names()[0], 'float32')) as { shape: readonly number[]; data: Float32Array };
  }

  async notify<M extends keyof WebviewApi['notifications']>(method: M, params: WebviewApi['notifications'][M]): Promise<void> {
    await this.page.evaluate(([m, p]) => (window as unknown as { fakeHost: { notify(m: string, p: unknown): void } }).fakeHost.notify(m, p), [method, params] as const);
  }

  /** Tensors the fake host serves through readTensor. */
  async offerTensors(tensors: Record<string, unknown>): Promise<void> {
    const url = this.server.offer(tensors);
    await this.page.evaluate((u) => (window as unknown as { fakeHost: { offerTensors(u: string): Promise<void> } }).fakeHost.offerTensors(u), url);
  }

  /** What the fake host's file picker answers for an intervention's file, and what it reads for each spec (spec → InterventionInputMessage). */
  async offerInterventionFiles(pick: { file: string; key?: string } | null, inputs: Record<string, unknown>): Promise<void> {
    const url = this.server.offer(inputs);
    await this.page.evaluate(([p, u]) => (window as unknown as { fakeHost: { offerInterventionFiles(p: unknown, u: string): Promise<void> } }).fakeHost.offerInterventionFiles(p, u), [pick, url] as const);
  }

  /** Notifications the webview sent so far, optionally of one method. */
  async notifications(method?: string): Promise<{ method: string; params: any }[]> {
    const all = await this.page.evaluate(() => (window as unknown as { fakeHost: { notifications: { method: string; params: unknown }[] } }).fakeHost.notifications);
    return method ? all.filter((n) => n.method === method) : all;
  }

  async waitForNotification(method: string, timeout = 60_000): Promise<any> {
    await this.page.waitForFunction((m) => (window as unknown as { fakeHost?: { notifications: { method: string }[] } }).fakeHost?.notifications.some((n) => n.method === m), method, { timeout });
    const list = await this.notifications(method);
    return list[list.length - 1].params;
  }

  /** Waits until a view's frame is ready (drawn) and two animation frames have painted. */
  async waitForView(id: string, timeout = 60_000): Promise<void> {
    await this.page.waitForSelector(`.view-${id}[data-state="ready"]`, { timeout });
    await this.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  }

  async close(): Promise<void> {
    await this.browser.close();
    await this.server.close();
  }
}

/** A reply as page.evaluate returns it: TensorMessage buffers become `values`, other ArrayBuffers base64 text. */
export type Plain<T> = T extends ArrayBuffer ? string : T extends { buffer: ArrayBuffer; dtype: string } ? Omit<T, 'buffer'> & { values: number[] } : T extends object ? { [K in keyof T]: Plain<T[K]> } : T;
