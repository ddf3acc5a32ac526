/**
 * Save requests and their replies (docs/wire-protocol.md, "save request" and "save reply"):
 * whether one is worth sending, numbering each, matching the server's reply to it by
 * `responseTo`, and giving up after a timeout.
 *
 * Kept apart from room.ts, which owns the connection: this bookkeeping needs nothing of it
 * but the socket to send on, whether we may edit, and the replies it decodes.
 */
import { PromiseDelegate } from '@lumino/coreutils';
import { ISaveReply, SaveStatus, saveRequestFrame } from './protocol';

/** How long a save request waits for the server's reply. */
const SAVE_TIMEOUT_MS = 15000;

export type SaveResult = SaveStatus | 'timeout';

export class SaveRequests {
  /** Ask the server to save now; resolves with its status, or 'timeout' (viewers never ask). */
  async request(ws: WebSocket | null, canEdit: boolean): Promise<SaveResult> {
    if (!canEdit) {
      return 'skipped';
    }
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return 'skipped'; // the server saves what it has; our edits go with the resync
    }
    const id = ++this._counter;
    const reply = new PromiseDelegate<SaveResult>();
    this._waiters.set(id, reply);
    ws.send(saveRequestFrame(id));
    const timeout = window.setTimeout(() => reply.resolve('timeout'), SAVE_TIMEOUT_MS);
    try {
      return await reply.promise;
    } finally {
      window.clearTimeout(timeout);
      this._waiters.delete(id);
    }
  }

  /** A save reply from the server: settles the request it answers, if that still waits. */
  onReply(reply: ISaveReply): void {
    this._waiters.get(reply.responseTo)?.resolve(reply.status);
  }

  private _counter = 0;
  private _waiters = new Map<number, PromiseDelegate<SaveResult>>();
}
