/**
 * One WebSocket connection to a jupyter-collab room, as a state machine: connecting,
 * connected, reconnecting with backoff, failed; Yjs sync and awareness over it, the role
 * that decides what we may send, and save requests. The frames and close codes are
 * protocol.ts's, the room's address is session.ts's, the bookkeeping of save requests
 * saves.ts's.
 *
 * Written instead of using y-websocket because we need what it hides: the close code and
 * reason, the role notice before sync step 1 (a viewer must never send a non-empty
 * update, or the server refuses it and closes the socket), a fresh session request on
 * every reconnect (the server's sessionId changes when it restarts), and the "offline with
 * unsaved edits" state.
 */
import * as Y from 'yjs';
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates } from 'y-protocols/awareness';
import { ServerConnection } from '@jupyterlab/services';
import { PromiseDelegate } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';
import {
  EMPTY_UPDATE,
  ICloseAction,
  IDeniedNotice,
  IRoleNotice,
  NORMAL_CLOSURE,
  Notice,
  Role,
  SyncType,
  UNEXPLAINED_CLOSES,
  awarenessFrame,
  awarenessLeftUpdate,
  decodeFrame,
  describeClose,
  syncStep1Frame,
  syncStep2Frame,
  syncUpdateFrame
} from './protocol';
import { SaveRequests, SaveResult } from './saves';
import { FatalSessionError, IRoomTarget, roomUrl } from './session';

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

export interface IRoomOptions extends IRoomTarget {
  doc: Y.Doc;
  awareness: Awareness;
  serverSettings: ServerConnection.ISettings;
}

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

  /** The server refused a change or save of ours. */
  get denied(): ISignal<this, IDeniedNotice> {
    return this._denied;
  }

  /** The last close the user should act on (reload or lost access). */
  get fatal(): ISignal<this, ICloseAction> {
    return this._fatal;
  }

  /** Ask the server to save now; resolves with its status (viewers never ask). */
  save(): Promise<SaveResult> {
    return this._saves.request(this._ws, this._rights?.canEdit ?? true);
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
    this._ws?.close(NORMAL_CLOSURE);
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
      const clock = (this.awareness.meta.get(this.doc.clientID)?.clock ?? 0) + 1;
      this._send(awarenessFrame(awarenessLeftUpdate(this.doc.clientID, clock)));
    }
    this.awareness.off('update', this._onAwarenessUpdate);
    this._ws?.close(NORMAL_CLOSURE);
    this._ws = null;
    this._ready.reject(new Error('closed'));
    this._ready.promise.catch(() => undefined);
    Signal.clearData(this);
  }

  // -- connection -----------------------------------------------------------------------

  private async _connect(): Promise<void> {
    if (this._disposed || this._requesting) {
      return; // one session request at a time (retryNow may race the backoff timer)
    }
    this._setStatus(this._everConnected ? 'reconnecting' : 'connecting');
    let url: string;
    this._requesting = true;
    try {
      url = await roomUrl(this._options, this._options.serverSettings);
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
      this._send(syncStep1Frame(Y.encodeStateVector(this.doc)));
      if (this.awareness.getLocalState() !== null) {
        this._sendAwareness([this.doc.clientID]);
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
      if (UNEXPLAINED_CLOSES.has(event.code)) {
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
    const frame = decodeFrame(data);
    if (frame?.type === 'sync') {
      if (frame.kind === SyncType.STEP1) {
        this._answerStep1(frame.payload);
        return;
      }
      Y.applyUpdate(this.doc, frame.payload, this);
      if (frame.kind === SyncType.STEP2 && !this._synced) {
        this._synced = true;
        this._setStatus('connected');
        this._ready.resolve();
      }
    } else if (frame?.type === 'awareness') {
      applyAwarenessUpdate(this.awareness, frame.update, this);
    } else if (frame?.type === 'notice') {
      this._onNotice(frame.notice);
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
    this._send(syncStep2Frame(update));
    if (canEdit && this._unsent) {
      this._unsent = false;
      this._statusChanged.emit(this.status);
    }
  }

  private _onNotice(notice: Notice): void {
    if (notice.type === 'role') {
      this._onRole(notice);
    } else if (notice.type === 'save') {
      this._saves.onReply(notice);
    } else {
      this._denied.emit(notice);
    }
  }

  private _onRole(notice: IRoleNotice): void {
    const wasViewer = this._rights !== null && !this._rights.canEdit;
    this._rights = {
      role: notice.role,
      canEdit: notice.can_edit,
      canLock: notice.can_lock,
      lockedCells: notice.locked_cells
    };
    this._rightsChanged.emit(this._rights);
    if (wasViewer && this._rights.canEdit && this._localOnly) {
      this._localOnly = false;
      // Local-only changes made while viewing: resync so the server gets them now.
      this.reconnect();
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
    ws.send(syncUpdateFrame(update));
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
      this._sendAwareness(ours);
    }
  };

  private _sendAwareness(clients: number[]): void {
    this._send(awarenessFrame(encodeAwarenessUpdate(this.awareness, clients)));
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
  private _saves = new SaveRequests();
  private _statusChanged = new Signal<this, IStatus>(this);
  private _rightsChanged = new Signal<this, IRights>(this);
  private _denied = new Signal<this, IDeniedNotice>(this);
  private _fatal = new Signal<this, ICloseAction>(this);
}
