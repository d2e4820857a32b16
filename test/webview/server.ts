/**
 * The static server of the browser tests, on 127.0.0.1 (a secure context, so WebGPU is allowed):
 * the harness page, the fake host (bundled here with esbuild), the real dist/webview.js and
 * media/, tfjs-backend-wasm's .wasm files, and protocol messages the tests build in Node.
 */
import * as esbuild from 'esbuild';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { splitMessage, type SplitMessage } from './wire';

export const ROOT = join(__dirname, '..', '..');
const WASM_DIR = join(ROOT, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.map': 'application/json', '.wasm': 'application/wasm' };

export class HarnessServer {
  private readonly messages = new Map<string, SplitMessage & { once: boolean; left: number }>();
  private next = 0;
  /** What the fake host's readWeight gets for a weight it was not offered (the memory benchmark reads a checkpoint on disk). */
  private weights: ((name: string) => Promise<unknown>) | undefined;

  private constructor(private readonly server: Server, readonly origin: string) {}

  static async start(): Promise<HarnessServer> {
    const bundle = join(ROOT, 'dist', 'webview.js');
    if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run \`node build.mjs\` first (npm run test:webview does)`);
    const fakeHost = await esbuild.build({ entryPoints: [join(__dirname, 'harness', 'fakeHost.ts')], bundle: true, write: false, format: 'iife', platform: 'browser', target: 'es2022', logLevel: 'warning' });
    const fakeHostJs = fakeHost.outputFiles[0].contents;
    let self: HarnessServer | undefined;
    const server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const send = (body: Uint8Array | string, type: string) => {
        res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
        res.end(body);
      };
      if (path === '/harness/fakeHost.js') return send(fakeHostJs, TYPES['.js']);
      if (path === '/favicon.ico') return send('', 'image/x-icon');
      if (path.startsWith('/msg/')) {
        // /msg/<id>: the skeleton; /msg/<id>/<k>: its buffer k.
        const [id, part] = path.slice(5).split('/');
        const m = self?.messages.get(id);
        if (m && part === undefined) return send(m.skeleton, 'application/json');
        const b = m?.buffers[Number(part)];
        if (m && b) {
          // A message offered once is let go when its last buffer has gone.
          if (m.once && --m.left === 0) self?.messages.delete(id);
          return send(new Uint8Array(b), 'application/octet-stream');
        }
      }
      if (path.startsWith('/weight/') && self?.weights) {
        // /weight/<name>: the URL of the weight's message, offered once.
        const name = decodeURIComponent(path.slice(8));
        const server = self;
        void server.weights!(name).then(
          (m) => send(server.offer(m, true), 'text/plain'),
          (e: unknown) => {
            res.writeHead(500);
            res.end(String(e));
          },
        );
        return;
      }
      const file = path.startsWith('/wasm/') ? join(WASM_DIR, path.slice(6)) : path === '/' ? join(__dirname, 'harness', 'index.html') : path.startsWith('/harness/') ? join(__dirname, path) : join(ROOT, normalize(path));
      const allowed = [join(ROOT, 'dist'), join(ROOT, 'media'), join(__dirname, 'harness'), WASM_DIR].some((d) => file.startsWith(d + '/'));
      if (allowed && existsSync(file)) return send(readFileSync(file), TYPES[extname(file)] ?? 'application/octet-stream');
      res.writeHead(404);
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    self = new HarnessServer(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return self;
  }

  /** Holds a message for the page to fetch (skeleton, then each buffer); returns its URL path. `once`: let go when fetched. */
  offer(message: unknown, once = false): string {
    const id = String(this.next++);
    const split = splitMessage(message);
    this.messages.set(id, { ...split, once: once && split.buffers.length > 0, left: split.buffers.length });
    return `/msg/${id}`;
  }

  /** Serves the weights the fake host is asked for and was not offered (GET /weight/<name>). */
  serveWeights(read: (name: string) => Promise<unknown>): void {
    this.weights = read;
  }

  get wasmPath(): string {
    return `${this.origin}/wasm/`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
