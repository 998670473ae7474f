// Minimal Socket.IO server for bench/compare: WebSocket transport only, the default
// namespace, two events.
//   join(room, ack)  joins `room`, then acknowledges (so the client knows it is in).
//   to(room, data)   relays `data` as event "m" to every socket in `room` (fanout: the
//                    subscribers' common room; p2p: the peer's own room).
// Usage: PORT=3000 node server.js
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 3000);
const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  maxHttpBufferSize: 1e6,
});

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(String(room));
    if (typeof ack === "function") ack();
  });
  socket.on("to", (room, data) => {
    io.to(String(room)).emit("m", data);
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`socket.io ${require("socket.io/package.json").version} on 127.0.0.1:${port}`);
});
