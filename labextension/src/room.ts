/**
 * One WebSocket connection to a jupyter-collab room: Yjs sync, awareness and our custom
 * channel (message type 2, a var-string JSON), with reconnection and clear close reasons.
 *
 * Written instead of using y-websocket because we need what it hides: the close code and
 * reason, the role notice before sync step 1 (a viewer must never send a non-empty
 * update, or the server refuses it and closes the socket), a fresh session request on
 * every reconnect (the server's sessionId changes when it restarts), and the "offline with
 * unsaved edits" state.
 */
import * as Y from 'yjs';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import {
  Awareness,
  applyAwarenessUpdate,
  encodeAwarenessUpdate,
  removeAwarenessStates
} from 'y-protocols/awareness';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { PromiseDelegate } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

const MSG_SYNC = 0;
const MSG_AWARENESS = 1;
const MSG_CUSTOM = 2;
const SYNC_STEP1 = 0;
const SYNC_STEP2 = 1;
const SYNC_UPDATE = 2;
/** A Yjs update that changes nothing: what a viewer answers to the server's step 1. */
const EMPTY_UPDATE = new Uint8Array([0, 0]);

export type Role = 'owner' | 'editor' | 'viewer';

/** The rights the server tells each connection on join and whenever they change. */
export interface IRights {
  role: Role;
  canEdit: boolean;
  canLock: boolean;
  lockedCells: string[];
}

export type ConnectionStatus = 'connecting' | 'connected' | 'reconnecting' | 'failed';

export interface IStatus {
  status: ConnectionStatus;
  /** Local changes the server has not received yet. */
  unsentEdits: boolean;
  /** Why the last connection closed, for people (empty when connected). */
  message: string;
  /** Milliseconds until the next attempt, when reconnecting. */
  retryInMs: number;
}

/** What to do after a close code. */
interface ICloseAction {
  retry: boolean;
  message: string;
  /** The first retry's delay, in ms (for restarts, soon). */
  firstDelay?: number;
  /** Ask the user to reload the page (the server says our state cannot be used). */
  reload?: boolean;
}

/** Turn the server's close codes (README "Bad input", "Permissions") into messages. */
export function describeClose(code: number, reason: string): ICloseAction {
  let payload: { reason?: string; errorReason?: string; reloadable?: boolean } = {};
  if (code === 1003) {
    try {
      payload = JSON.parse(reason);
    } catch {
      payload = { reason: 'unknown', errorReason: reason };
    }
    switch (payload.reason) {
      case 'permission_denied':
        return {
          retry: false,
          reload: true,
          message:
            'The server refused a change: ' +
            (payload.errorReason || 'you may only view this document') +
            '. Reload to see the current version.'
        };
      case 'unknown_session':
        return {
          retry: false,
          reload: true,
          message:
            'The server does not know this copy of the document (its history was reset). ' +
            'Your content was merged in; reload to continue.'
        };
      case 'version_mismatch':
        return { retry: false, reload: true, message: 'The server was updated: reload the page.' };
      default:
        return {
          retry: false,
          reload: !!payload.reloadable,
          message: `The server closed the document: ${payload.errorReason || reason || 'unknown reason'}.`
        };
    }
  }
  switch (code) {
    case 1012:
      return { retry: true, firstDelay: 300, message: 'The server is restarting.' };
    case 1013:
      return { retry: true, message: 'The server asked us to reconnect (too far behind).' };
    case 1008:
      return {
        retry: true,
        firstDelay: 5000,
        message: `Limit reached: ${reason || 'too many messages or connections'}.`
      };
    case 1009:
      return { retry: true, message: 'A change was too large for the server.' };
    case 4400:
      return { retry: false, message: `The server did not understand us: ${reason}.` };
    case 4401:
    case 4403:
      return { retry: false, message: 'You no longer have access to this document.' };
    case 4404:
      return { retry: false, message: 'This document no longer exists on the server.' };
    case 4500:
      return { retry: true, firstDelay: 2000, message: 'Server error.' };
    default:
      return { retry: true, message: 'Connection lost.' };
  }
}

export interface IRoomOptions {
  /** Fixed room id (awareness-only rooms), or a session request giving one. */
  roomId?: string;
  session?: { path: string; format: string; type: string };
  doc: Y.Doc;
  awareness: Awareness;
  serverSettings: ServerConnection.ISettings;
}

/** A session answer: where the room of a file is. */
interface ISession {
  format: string;
  type: string;
  fileId: string;
  sessionId: string;
}

/** Thrown for session answers that retrying will not change (403, 404). */
class FatalSessionError extends Error {}

export class RoomConnection {
  constructor(options: IRoomOptions) {
    this._options = options;
    this.doc = options.doc;
    this.awareness = options.awareness;
    this.doc.on('update', this._onDocUpdate);
    this.awareness.on('update', this._onAwarenessUpdate);
    window.addEventListener('online', this._onOnline);
    void this._connect();
  }

  readonly doc: Y.Doc;
  readonly awareness: Awareness;

  /** Resolves on the first full sync; rejects if the room can never be joined. */
  get ready(): Promise<void> {
    return this._ready.promise;
  }

  get synced(): boolean {
    return this._synced;
  }

  get rights(): IRights | null {
    return this._rights;
  }

  get status(): IStatus {
    return {
      status: this._status,
      unsentEdits: this._unsent,
      message: this._message,
      retryInMs: this._retryIn
    };
  }

  get statusChanged(): ISignal<this, IStatus> {
    return this._statusChanged;
  }

  get rightsChanged(): ISignal<this, IRights> {
    return this._rightsChanged;
  }

  /** Custom-channel JSON messages other than role and save replies. */
  get notice(): ISignal<this, Record<string, any>> {
    return this._notice;
  }

  /** The last close the user should act on (reload or lost access). */
  get fatal(): ISignal<this, ICloseAction> {
    return this._fatal;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Ask the server to save now; resolves with its status (viewers never ask). */
  async save(): Promise<string> {
    if (this._rights && !this._rights.canEdit) {
      return 'skipped';
    }
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return 'skipped'; // the server saves what it has; our edits go with the resync
    }
    const id = ++this._saveCounter;
    const reply = new PromiseDelegate<string>();
    this._saveWaiters.set(id, reply);
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MSG_CUSTOM);
    encoding.writeVarString(encoder, 'save');
    encoding.writeVarUint(encoder, id);
    ws.send(encoding.toUint8Array(encoder));
    const timeout = window.setTimeout(() => reply.resolve('timeout'), 15000);
    try {
      return await reply.promise;
    } finally {
      window.clearTimeout(timeout);
      this._saveWaiters.delete(id);
    }
  }

  /** The file moved: later session requests (reconnects) use the new path. */
  renamed(path: string): void {
    if (this._options.session) {
      this._options.session = { ...this._options.session, path };
    }
  }

  /** Close and reopen now (e.g. after a role change made us an editor). */
  reconnect(): void {
    this._attempt = 0;
    this._ws?.close(1000);
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    window.clearTimeout(this._timer);
    window.removeEventListener('online', this._onOnline);
    this.doc.off('update', this._onDocUpdate);
    // Say goodbye in presence before closing, so others do not wait for a timeout.
    if (this._ws?.readyState === WebSocket.OPEN) {
      this._send(this._awarenessFrame([this.doc.clientID], true));
    }
    this.awareness.off('update', this._onAwarenessUpdate);
    this._ws?.close(1000);
    this._ws = null;
    this._ready.reject(new Error('closed'));
    this._ready.promise.catch(() => undefined);
    Signal.clearData(this);
  }

  // -- connection -----------------------------------------------------------------------

  private async _roomUrl(): Promise<string> {
    const settings = this._options.serverSettings;
    let roomId = this._options.roomId ?? '';
    const params = new URLSearchParams();
    const session = this._options.session;
    if (session) {
      const answer = await requestSession(session, settings);
      roomId = `${answer.format}:${answer.type}:${answer.fileId}`;
      params.set('sessionId', answer.sessionId);
    }
    if (settings.appendToken && settings.token) {
      params.set('token', settings.token);
    }
    const url = URLExt.join(settings.wsUrl, 'api/collaboration/room', roomId);
    const query = params.toString();
    return query ? `${url}?${query}` : url;
  }

  private async _connect(): Promise<void> {
    if (this._disposed || this._requesting) {
      return; // one session request at a time (retryNow may race the backoff timer)
    }
    this._setStatus(this._everConnected ? 'reconnecting' : 'connecting');
    let url: string;
    this._requesting = true;
    try {
      url = await this._roomUrl();
    } catch (error) {
      if (error instanceof FatalSessionError) {
        this._fail({ retry: false, message: error.message });
      } else {
        this._message = 'The server cannot be reached.';
        this._scheduleRetry();
      }
      return;
    } finally {
      this._requesting = false;
    }
    if (this._disposed) {
      return;
    }
    const WebSocketCtor = this._options.serverSettings.WebSocket ?? WebSocket;
    const ws = new WebSocketCtor(url);
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    ws.onopen = () => {
      this._everConnected = true;
      this._attempt = 0;
      this._message = '';
      // Our step 1: the server answers with what we lack.
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, MSG_SYNC);
      encoding.writeVarUint(encoder, SYNC_STEP1);
      encoding.writeVarUint8Array(encoder, Y.encodeStateVector(this.doc));
      this._send(encoding.toUint8Array(encoder));
      if (this.awareness.getLocalState() !== null) {
        this._send(this._awarenessFrame([this.doc.clientID]));
      }
    };
    ws.onmessage = event => this._onMessage(new Uint8Array(event.data as ArrayBuffer));
    ws.onclose = event => {
      if (this._ws !== ws) {
        return;
      }
      this._ws = null;
      this._synced = false;
      // Everyone else's presence came through this socket: it is stale now.
      const others = [...this.awareness.getStates().keys()].filter(id => id !== this.doc.clientID);
      removeAwarenessStates(this.awareness, others, this);
      if (this._disposed) {
        return;
      }
      const action = describeClose(event.code, event.reason);
      if (event.code === 1000 || event.code === 1005 || event.code === 1006) {
        action.message = this._message || action.message;
      }
      if (!action.retry) {
        this._fail(action);
        return;
      }
      this._message = action.message;
      this._scheduleRetry(action.firstDelay);
    };
  }

  private _scheduleRetry(firstDelay?: number): void {
    // Exponential backoff with jitter, 0.5 s to 10 s; restarts get a quick first try.
    const base = this._attempt === 0 && firstDelay !== undefined ? firstDelay : 500 * 2 ** this._attempt;
    const delay = Math.min(10000, base) * (0.8 + Math.random() * 0.4);
    this._attempt += 1;
    this._retryIn = Math.round(delay);
    this._setStatus('reconnecting');
    window.clearTimeout(this._timer);
    this._timer = window.setTimeout(() => void this._connect(), delay);
  }

  /** While reconnecting: try now instead of waiting for the backoff (a click, or the
   * browser coming back online). */
  retryNow(): void {
    if (this._status === 'reconnecting' && !this._ws) {
      window.clearTimeout(this._timer);
      void this._connect();
    }
  }

  private _onOnline = (): void => this.retryNow();

  private _fail(action: ICloseAction): void {
    this._message = action.message;
    this._setStatus('failed');
    if (!this._synced) {
      this._ready.reject(new Error(action.message));
      this._ready.promise.catch(() => undefined);
    }
    this._fatal.emit(action);
  }

  private _setStatus(status: ConnectionStatus): void {
    this._status = status;
    if (status !== 'reconnecting') {
      this._retryIn = 0;
    }
    this._statusChanged.emit(this.status);
  }

  private _send(frame: Uint8Array): void {
    const ws = this._ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(frame);
    }
  }

  // -- incoming -------------------------------------------------------------------------

  private _onMessage(data: Uint8Array): void {
    const decoder = decoding.createDecoder(data);
    const type = decoding.readVarUint(decoder);
    if (type === MSG_SYNC) {
      const kind = decoding.readVarUint(decoder);
      const payload = decoding.readVarUint8Array(decoder);
      if (kind === SYNC_STEP1) {
        this._answerStep1(payload);
      } else {
        Y.applyUpdate(this.doc, payload, this);
        if (kind === SYNC_STEP2 && !this._synced) {
          this._synced = true;
          this._setStatus('connected');
          this._ready.resolve();
        }
      }
    } else if (type === MSG_AWARENESS) {
      applyAwarenessUpdate(this.awareness, decoding.readVarUint8Array(decoder), this);
    } else if (type === MSG_CUSTOM) {
      this._onCustom(decoding.readVarString(decoder));
    }
  }

  /**
   * The server's step 1 asks for what it lacks. Editors send it (offline edits included);
   * viewers answer with nothing, whatever their local copy holds (JupyterLab writes
   * kernel metadata locally), since any non-empty update from a viewer is refused.
   */
  private _answerStep1(stateVector: Uint8Array): void {
    const canEdit = this._rights?.canEdit ?? true;
    const update = canEdit ? Y.encodeStateAsUpdate(this.doc, stateVector) : EMPTY_UPDATE;
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MSG_SYNC);
    encoding.writeVarUint(encoder, SYNC_STEP2);
    encoding.writeVarUint8Array(encoder, update);
    this._send(encoding.toUint8Array(encoder));
    if (canEdit && this._unsent) {
      this._unsent = false;
      this._statusChanged.emit(this.status);
    }
  }

  private _onCustom(text: string): void {
    let body: Record<string, any>;
    try {
      body = JSON.parse(text);
    } catch {
      return;
    }
    if (body.type === 'role') {
      const wasViewer = this._rights !== null && !this._rights.canEdit;
      this._rights = {
        role: body.role,
        canEdit: !!body.can_edit,
        canLock: !!body.can_lock,
        lockedCells: Array.isArray(body.locked_cells) ? body.locked_cells : []
      };
      this._rightsChanged.emit(this._rights);
      if (wasViewer && this._rights.canEdit && this._localOnly) {
        this._localOnly = false;
        // Local-only changes made while viewing: resync so the server gets them now.
        this.reconnect();
      }
    } else if (body.type === 'save') {
      this._saveWaiters.get(body.responseTo)?.resolve(String(body.status));
    } else {
      this._notice.emit(body);
    }
  }

  // -- outgoing -------------------------------------------------------------------------

  private _onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === this) {
      return;
    }
    const ws = this._ws;
    const canEdit = this._rights?.canEdit ?? true;
    if (!canEdit) {
      this._localOnly = true; // never sent while viewing (see _answerStep1)
      return;
    }
    if (!ws || ws.readyState !== WebSocket.OPEN || !this._synced) {
      // Sent with the next step 2.
      if (!this._unsent) {
        this._unsent = true;
        this._statusChanged.emit(this.status);
      }
      return;
    }
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MSG_SYNC);
    encoding.writeVarUint(encoder, SYNC_UPDATE);
    encoding.writeVarUint8Array(encoder, update);
    ws.send(encoding.toUint8Array(encoder));
  };

  private _onAwarenessUpdate = (
    changes: { added: number[]; updated: number[]; removed: number[] },
    origin: unknown
  ): void => {
    if (origin === this) {
      return;
    }
    const ours = [...changes.added, ...changes.updated, ...changes.removed].filter(
      id => id === this.doc.clientID
    );
    if (ours.length) {
      this._send(this._awarenessFrame(ours));
    }
  };

  private _awarenessFrame(clients: number[], leaving = false): Uint8Array {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MSG_AWARENESS);
    let update: Uint8Array;
    if (leaving) {
      // A null state with a newer clock: "this client left".
      const meta = this.awareness.meta.get(this.doc.clientID);
      const clock = (meta?.clock ?? 0) + 1;
      const inner = encoding.createEncoder();
      encoding.writeVarUint(inner, 1);
      encoding.writeVarUint(inner, this.doc.clientID);
      encoding.writeVarUint(inner, clock);
      encoding.writeVarString(inner, 'null');
      update = encoding.toUint8Array(inner);
    } else {
      update = encodeAwarenessUpdate(this.awareness, clients);
    }
    encoding.writeVarUint8Array(encoder, update);
    return encoding.toUint8Array(encoder);
  }

  private _options: IRoomOptions;
  private _ws: WebSocket | null = null;
  private _ready = new PromiseDelegate<void>();
  private _synced = false;
  private _requesting = false;
  private _everConnected = false;
  private _rights: IRights | null = null;
  private _status: ConnectionStatus = 'connecting';
  private _unsent = false;
  private _localOnly = false;
  private _message = '';
  private _retryIn = 0;
  private _attempt = 0;
  private _timer = 0;
  private _disposed = false;
  private _saveCounter = 0;
  private _saveWaiters = new Map<number, PromiseDelegate<string>>();
  private _statusChanged = new Signal<this, IStatus>(this);
  private _rightsChanged = new Signal<this, IRights>(this);
  private _notice = new Signal<this, Record<string, any>>(this);
  private _fatal = new Signal<this, ICloseAction>(this);
}

/** PUT /api/collaboration/session/{path}: the room of a file (403/404 are final). */
async function requestSession(
  session: { path: string; format: string; type: string },
  settings: ServerConnection.ISettings
): Promise<ISession> {
  const url = URLExt.join(settings.baseUrl, 'api/collaboration/session', encodeURIComponent(session.path));
  const response = await ServerConnection.makeRequest(
    url,
    { method: 'PUT', body: JSON.stringify({ format: session.format, type: session.type }) },
    settings
  );
  if (response.status === 403) {
    throw new FatalSessionError('You do not have access to this document.');
  }
  if (response.status === 404) {
    throw new FatalSessionError('This document does not exist on the server.');
  }
  if (!response.ok) {
    throw new Error(`session request failed: ${response.status}`);
  }
  return (await response.json()) as ISession;
}
