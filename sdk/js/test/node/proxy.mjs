// A fault-injection TCP proxy for the resume tests (the JS twin of the Rust tests'
// crates/server/tests/common/proxy.rs): forwards every connection to the server;
// `freeze()` holds every byte both ways with the sockets open (a stalled network) until
// `pass()`, which delivers what was held in order; `holdReplies()` holds only what the
// server sends (so a request gets through and its reply does not, until `pass()`);
// `cut()` closes every current
// connection at once. `seen` collects the bytes the server sent through it (for checks on what
// the wire carried).
import net from "node:net";

export async function startProxy(upstreamAddr) {
  const [host, port] = upstreamAddr.split(":");
  const pairs = new Set();
  const sockets = new Set();
  let frozen = false;
  let holdingReplies = false;
  const track = (sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    return sock;
  };
  const server = net.createServer((down) => {
    track(down);
    const up = track(net.connect(Number(port), host));
    const pair = { down, up, held: [] };
    pairs.add(pair);
    const forward = (from, to, dir) =>
      from.on("data", (d) => {
        if (dir === "up->down") proxy.seen.push(d);
        if (frozen || (holdingReplies && dir === "up->down")) pair.held.push([to, d]);
        else to.write(d);
      });
    forward(down, up, "down->up");
    forward(up, down, "up->down");
    const close = () => {
      pairs.delete(pair);
      down.destroy();
      up.destroy();
    };
    down.on("error", close).on("close", close);
    up.on("error", close).on("close", close);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const proxy = {
    addr: `127.0.0.1:${server.address().port}`,
    url: `ws://127.0.0.1:${server.address().port}`,
    seen: [],
    get connections() {
      return pairs.size;
    },
    freeze() {
      frozen = true;
    },
    holdReplies() {
      holdingReplies = true;
    },
    pass() {
      frozen = false;
      holdingReplies = false;
      for (const p of pairs) {
        for (const [to, d] of p.held) if (!to.destroyed) to.write(d);
        p.held = [];
      }
    },
    cut() {
      for (const p of [...pairs]) {
        pairs.delete(p);
        // destroy(), not resetAndDestroy(): the latter left the test process spinning at
        // exit now and then (Node 20); the client sees its connection end either way.
        p.down.destroy();
        p.up.destroy();
      }
    },
    /** Stops accepting and closes every connection; does not wait for sockets to linger. */
    async stop() {
      const closed = new Promise((r) => server.close(r));
      this.cut();
      for (const sock of sockets) sock.destroy();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 1000).unref())]);
    },
  };
  return proxy;
}
