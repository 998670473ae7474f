/**
 * The WebSocket under a connection: the browser's (or any global) `WebSocket`, else the
 * `ws` package in Node (loaded lazily, so it is never in the browser bundle). Binary
 * frames only, as ArrayBuffers.
 */

/** The subset of the WebSocket API the SDK uses. */
export interface Socket {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}

type SocketCtor = new (url: string) => Socket;

let ctor: SocketCtor | undefined;

/** The WebSocket constructor of this platform. */
export async function socketClass(): Promise<SocketCtor> {
  if (ctor) return ctor;
  const isNode = typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";
  if (isNode) {
    try {
      const mod = (await import("ws")) as unknown as { default?: SocketCtor; WebSocket?: SocketCtor };
      const c = mod.WebSocket ?? mod.default;
      if (c) {
        ctor = c;
        return c;
      }
    } catch {
      // fall back to a global WebSocket (Node 22+)
    }
  }
  const g = (globalThis as { WebSocket?: SocketCtor }).WebSocket;
  if (!g) throw new Error("no WebSocket implementation: install the `ws` package");
  ctor = g;
  return g;
}

/**
 * The WebSocket URL of an access point entry (README): `host[:port]` means
 * `wss://host[:port]/v1/ws`; a full `ws://` or `wss://` URL is used as given, with the
 * path `/v1/ws` when it has none.
 */
export function endpointUrl(entry: string): string {
  const e = entry.trim();
  if (/^wss?:\/\//i.test(e)) {
    const u = new URL(e);
    if (u.pathname === "" || u.pathname === "/") u.pathname = "/v1/ws";
    return u.toString();
  }
  return `wss://${e.replace(/\/+$/, "")}/v1/ws`;
}
