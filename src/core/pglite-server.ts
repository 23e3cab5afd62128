// The owner's socket: an open PGlite served to the other processes of its data directory over
// the PostgreSQL wire protocol, on a unix socket (docs/embedded.md). The lock is ./pglite-lock.ts.
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { SOCKET_NAME } from './pglite-lock.ts';

/** PGlite's internals the server relies on (public methods, and the two locks PGlite's own query() takes). */
type Served = Pick<PGlite, 'runExclusive' | 'execProtocolRawStream' | 'execProtocolRaw'> & {
  _runExclusiveTransaction<T>(fn: () => Promise<T>): Promise<T>;
};

/** How long a closing owner lets its connected clients finish (a pg pool drops an idle connection after 10 s). */
const CLOSE_GRACE_MS = 30_000;

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

const simpleQuery = (text: string): Uint8Array => {
  const body = Buffer.from(`${text}\0`, 'utf8');
  const head = Buffer.alloc(5);
  head.write('Q', 0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
};
const SYNC = Uint8Array.from([0x53, 0, 0, 0, 4]);

/** Follows the backend's messages across chunks: is the last one ReadyForQuery with status idle? */
class BackendTail {
  private header: number[] = [];
  private left = 0;
  private type = 0;
  private lastType = 0;
  private lastByte = 0;
  feed(data: Uint8Array): void {
    let i = 0;
    while (i < data.length) {
      if (this.left === 0 && this.header.length < 5) {
        this.header.push(data[i++]!);
        if (this.header.length === 5) {
          const [t, a, b, c, d] = this.header as [number, number, number, number, number];
          this.type = t;
          this.left = ((a << 24) | (b << 16) | (c << 8) | d) - 4;
          if (this.left <= 0) this.finish(0);
        }
        continue;
      }
      const take = Math.min(this.left, data.length - i);
      i += take;
      this.left -= take;
      if (this.left === 0) this.finish(data[i - 1]!);
    }
  }
  private finish(lastByte: number): void {
    this.lastType = this.type;
    this.lastByte = lastByte;
    this.header = [];
    this.left = 0;
  }
  /** ReadyForQuery ('Z') with status 'I': no transaction and no extended-protocol batch open. */
  get idle(): boolean {
    return this.header.length === 0 && this.left === 0 && this.lastType === 0x5a && this.lastByte === 0x49;
  }
}

/**
 * Serves an open PGlite on a unix socket in socketDir. PGlite has one session, so the socket's
 * clients and the owner's own calls take turns by unit: a client's unit runs from its first
 * message until PGlite answers ReadyForQuery idle (the end of a statement outside a transaction,
 * or of the transaction), and holds PGlite's transaction lock all that time, the lock PGlite's own
 * query(), exec() and transaction() take. Nothing of another client or of the owner runs inside a
 * client's transaction or extended-protocol batch, nor a client's statement inside the owner's
 * transaction. A client that disconnects mid-unit is rolled back.
 */
export async function serveDatabase(db: Served, socketDir: string): Promise<{ close(graceMs?: number): Promise<void> }> {
  const socketPath = join(socketDir, SOCKET_NAME);
  // We own the directory: a socket file left there is a dead owner's.
  rmSync(socketPath, { force: true });
  const connections = new Set<{ socket: Socket; done: () => Promise<void> }>();
  const lease = () =>
    new Promise<() => void>((acquired) => {
      void db._runExclusiveTransaction(() => new Promise<void>((release) => acquired(release)));
    });

  const server: Server = createServer((socket) => {
    let buffer = Buffer.alloc(0);
    let started = false;
    let release: (() => void) | undefined;
    let chain: Promise<void> = Promise.resolve();
    const tail = new BackendTail();
    const forward = async (message: Uint8Array) => {
      if (socket.destroyed) return;
      release ??= await lease();
      await db.runExclusive(() =>
        db.execProtocolRawStream(message, {
          onRawData: (data) => {
            tail.feed(data);
            if (!socket.destroyed) socket.write(Buffer.from(data));
          },
        }),
      );
      if (tail.idle) {
        release();
        release = undefined;
      }
    };
    const rollback = async () => {
      if (!release) return;
      try {
        // ROLLBACK ends a transaction block or an unsynced extended batch; a batch that failed
        // ignores everything up to Sync, so Sync, and ROLLBACK once more for a block.
        await db.runExclusive(async () => {
          for (const message of [simpleQuery('ROLLBACK'), SYNC, simpleQuery('ROLLBACK')]) await db.execProtocolRaw(message);
        });
      } finally {
        release();
        release = undefined;
      }
    };
    const enqueue = (message: Uint8Array) => {
      chain = chain.then(() => forward(message)).catch(() => {
        socket.destroy();
      });
    };
    const entry = {
      socket,
      done: () => (chain = chain.then(rollback).catch(() => {})),
    };
    connections.add(entry);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      connections.delete(entry);
      void entry.done();
    });
    socket.on('data', (data) => {
      buffer = buffer.length ? Buffer.concat([buffer, data]) : data;
      const batch: Buffer[] = [];
      while (!socket.destroyed) {
        if (!started) {
          if (buffer.length < 8) break;
          const length = buffer.readInt32BE(0);
          const code = buffer.readInt32BE(4);
          if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
            socket.write('N');
            buffer = buffer.subarray(8);
            continue;
          }
          if (code === CANCEL_REQUEST) {
            // PGlite has no other backend to signal.
            socket.destroy();
            break;
          }
          if (buffer.length < length) break;
          enqueue(Buffer.from(buffer.subarray(0, length)));
          buffer = buffer.subarray(length);
          started = true;
          continue;
        }
        if (buffer.length < 5) break;
        const length = 1 + buffer.readInt32BE(1);
        if (buffer.length < length) break;
        if (buffer[0] === 0x58) {
          // Terminate: the client is done; what it left open is rolled back on close.
          socket.end();
          break;
        }
        batch.push(buffer.subarray(0, length));
        buffer = buffer.subarray(length);
      }
      // Every complete message that arrived together goes to PGlite in one call (pg sends Parse,
      // Bind, Describe, Execute and Sync in one write).
      if (batch.length) enqueue(Buffer.concat(batch));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Connecting takes write permission on the socket: the owner's user only.
  chmodSync(socketPath, 0o600);
  return {
    /**
     * Stops taking connections; the clients connected now (a CLI command beside a closing setup)
     * finish and disconnect first, for up to graceMs; then the rest are cut (and rolled back).
     */
    async close(graceMs = CLOSE_GRACE_MS) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      const pending = [...connections].map((c) => {
        c.socket.destroy();
        return c.done();
      });
      await Promise.all(pending);
      await closed;
      rmSync(socketPath, { force: true });
    },
  };
}
