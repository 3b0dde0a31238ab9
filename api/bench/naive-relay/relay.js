// A deliberately naive WebSocket relay, the baseline for `cloak-bench online --compare-naive`.
// No authentication, no storage, no acknowledgements, no backpressure: a client joins a
// room with ws://host:PORT/?room=NAME and every frame it sends is forwarded verbatim to the
// other sockets in the room.
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.env.PORT || 9001);
const rooms = new Map();
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });

wss.on('connection', (ws, req) => {
  const room = new URL(req.url, 'http://relay').searchParams.get('room') || '';
  let peers = rooms.get(room);
  if (!peers) rooms.set(room, (peers = new Set()));
  peers.add(ws);
  ws.on('message', (data, isBinary) => {
    for (const peer of peers) {
      if (peer !== ws && peer.readyState === peer.OPEN) peer.send(data, { binary: isBinary });
    }
  });
  ws.on('close', () => {
    peers.delete(ws);
    if (peers.size === 0) rooms.delete(room);
  });
});
wss.on('listening', () => console.error(`naive relay listening on 127.0.0.1:${port}`));
