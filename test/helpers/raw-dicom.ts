// A minimal raw DICOM Upper Layer client, to misbehave on purpose (garbage, silence, trickling,
// oversized PDUs), and the PDUs and command sets it sends. For the receiver's tests.
import net from 'node:net';

export const CT_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
export const EXPLICIT_LE = '1.2.840.10008.1.2.1';

function item(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h[0] = type;
  h.writeUInt16BE(body.length, 2);
  return Buffer.concat([h, body]);
}
const uidItem = (type: number, uid: string) => item(type, Buffer.from(uid, 'latin1'));
const ae = (s: string) => Buffer.from(s.padEnd(16, ' '), 'latin1');

/** A PDU: type, reserved byte, 32-bit length, body. */
export function pdu(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h[0] = type;
  h.writeUInt32BE(body.length, 2);
  return Buffer.concat([h, body]);
}

/** An A-ASSOCIATE-RQ proposing one presentation context (ID 1). */
export function associateRq(calling: string, called: string, abstract: string, ts: string): Buffer {
  const maxLen = Buffer.alloc(4);
  maxLen.writeUInt32BE(16384);
  return pdu(
    0x01,
    Buffer.concat([
      Buffer.from([0, 1, 0, 0]),
      ae(called),
      ae(calling),
      Buffer.alloc(32),
      uidItem(0x10, '1.2.840.10008.3.1.1.1'),
      item(0x20, Buffer.concat([Buffer.from([1, 0, 0, 0]), uidItem(0x30, abstract), uidItem(0x40, ts)])),
      item(0x50, Buffer.concat([item(0x51, maxLen), uidItem(0x52, '1.2.3.4.5')])),
    ]),
  );
}

/** A P-DATA-TF with one PDV (control: 0x01 command, 0x02 last fragment). */
export function pdata(pcId: number, control: number, value: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h.writeUInt32BE(value.length + 2, 0);
  h[4] = pcId;
  h[5] = control;
  return pdu(0x04, Buffer.concat([h, value]));
}

/** An implicit VR LE element of group 0000. */
export function element(el: number, value: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(0x0000, 0);
  h.writeUInt16LE(el, 2);
  h.writeUInt32LE(value.length, 4);
  return Buffer.concat([h, value]);
}
export const us = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};
export const ui = (s: string) => Buffer.from(s.length % 2 ? s + '\0' : s, 'latin1');

/** A C-STORE-RQ command set announcing a data set. */
export function cStoreRq(sopClass: string, sopInstance: string): Buffer {
  const body = Buffer.concat([
    element(0x0002, ui(sopClass)),
    element(0x0100, us(0x0001)),
    element(0x0110, us(1)),
    element(0x0700, us(0)),
    element(0x0800, us(0x0000)),
    element(0x1000, ui(sopInstance)),
  ]);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(body.length);
  return Buffer.concat([element(0x0000, len), body]);
}

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Connects (to 127.0.0.1 by default, from `localAddress` when given: any 127.x.y.z works on
 * Linux, so one test can be several peer addresses), collects received bytes; `closed` resolves
 * when the connection closes.
 */
export function rawClient(port: number, o: { host?: string; localAddress?: string } = {}) {
  const sock = net.connect({
    host: o.host ?? '127.0.0.1',
    port,
    ...(o.localAddress ? { localAddress: o.localAddress } : {}),
  });
  sock.setNoDelay(true);
  let received = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
  sock.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
  const connected = new Promise<void>((resolve) => sock.once('connect', () => resolve()));
  return {
    sock,
    connected,
    closed,
    received: () => received,
    waitBytes: (n: number, timeoutMs?: number) => waitFor(() => received.length >= n, timeoutMs),
  };
}
