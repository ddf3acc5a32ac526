/**
 * The wire contract with jupyter-collab's server, as docs/wire-protocol.md writes it down
 * and jupyter_collab/protocol.py owns it on the server: frame types and one builder per
 * frame we send, the decoder of frames we receive, the JSON notices of the custom channel,
 * and the close codes with what each one means for the user.
 *
 * Kept apart from the connection (room.ts) so that the contract is read in one place and
 * matches the server's names.
 */
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';

/** First var-uint of every frame (`MessageType` in protocol.py). */
export const MessageType = { SYNC: 0, AWARENESS: 1, CUSTOM: 2 } as const;

/** Second var-uint of a sync frame (`SyncType` in protocol.py). */
export const SyncType = { STEP1: 0, STEP2: 1, UPDATE: 2 } as const;
export type SyncType = (typeof SyncType)[keyof typeof SyncType];

/** A Yjs update that changes nothing: what a viewer answers to the server's step 1. */
export const EMPTY_UPDATE = new Uint8Array([0, 0]);

/** Every close code the server sends (`CloseCode` in protocol.py). */
export const CloseCode = {
  RELOAD: 1003,
  POLICY_VIOLATION: 1008,
  TOO_BIG: 1009,
  RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  BAD_REQUEST: 4400,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  SERVER_ERROR: 4500
} as const;

/** RFC 6455: the code of a deliberate close (ours). */
export const NORMAL_CLOSURE = 1000;

/** RFC 6455 codes of closes without a word from the server: ours, none given (1005), or
 * the connection dropped (1006). */
export const UNEXPLAINED_CLOSES: ReadonlySet<number> = new Set([NORMAL_CLOSURE, 1005, 1006]);

// -- frames we send --------------------------------------------------------------------

function encodeFrame(write: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder();
  write(encoder);
  return encoding.toUint8Array(encoder);
}

function syncFrame(kind: SyncType, payload: Uint8Array): Uint8Array {
  return encodeFrame(encoder => {
    encoding.writeVarUint(encoder, MessageType.SYNC);
    encoding.writeVarUint(encoder, kind);
    encoding.writeVarUint8Array(encoder, payload);
  });
}

export const syncStep1Frame = (stateVector: Uint8Array): Uint8Array => syncFrame(SyncType.STEP1, stateVector);
export const syncStep2Frame = (update: Uint8Array): Uint8Array => syncFrame(SyncType.STEP2, update);
export const syncUpdateFrame = (update: Uint8Array): Uint8Array => syncFrame(SyncType.UPDATE, update);

export function awarenessFrame(update: Uint8Array): Uint8Array {
  return encodeFrame(encoder => {
    encoding.writeVarUint(encoder, MessageType.AWARENESS);
    encoding.writeVarUint8Array(encoder, update);
  });
}

/** An awareness update saying that `clientId` left: its state is null at a newer clock. */
export function awarenessLeftUpdate(clientId: number, clock: number): Uint8Array {
  return encodeFrame(encoder => {
    encoding.writeVarUint(encoder, 1);
    encoding.writeVarUint(encoder, clientId);
    encoding.writeVarUint(encoder, clock);
    encoding.writeVarString(encoder, 'null');
  });
}

export function saveRequestFrame(requestId: number): Uint8Array {
  return encodeFrame(encoder => {
    encoding.writeVarUint(encoder, MessageType.CUSTOM);
    encoding.writeVarString(encoder, 'save');
    encoding.writeVarUint(encoder, requestId);
  });
}

// -- frames we receive -----------------------------------------------------------------

export type IncomingFrame =
  | { type: 'sync'; kind: SyncType; payload: Uint8Array }
  | { type: 'awareness'; update: Uint8Array }
  | { type: 'notice'; notice: Notice };

/** A server frame, or null for one this client has no use for (an unknown type, or a
 * notice that is not one of those below). */
export function decodeFrame(data: Uint8Array): IncomingFrame | null {
  const decoder = decoding.createDecoder(data);
  switch (decoding.readVarUint(decoder)) {
    case MessageType.SYNC: {
      const kind = decoding.readVarUint(decoder);
      const payload = decoding.readVarUint8Array(decoder);
      return isOneOf(kind, Object.values(SyncType)) ? { type: 'sync', kind, payload } : null;
    }
    case MessageType.AWARENESS:
      return { type: 'awareness', update: decoding.readVarUint8Array(decoder) };
    case MessageType.CUSTOM: {
      const notice = parseNotice(decoding.readVarString(decoder));
      return notice && { type: 'notice', notice };
    }
    default:
      return null;
  }
}

// -- JSON notices on the custom channel (role_notice, denied_notice, save_reply) ---------

const ROLES = ['owner', 'editor', 'viewer'] as const;
const SAVE_STATUSES = ['success', 'skipped', 'failed'] as const;
export type Role = (typeof ROLES)[number];
export type SaveStatus = (typeof SAVE_STATUSES)[number];

/** A connection's rights, sent on join (before sync step 1) and on every change. */
export interface IRoleNotice {
  type: 'role';
  role: Role;
  can_edit: boolean;
  can_lock: boolean;
  /** Cells the policy locks (cells with `"editable": false` are locked as well). */
  locked_cells: string[];
}

/** A change or save of ours was refused (a change is then followed by a RELOAD close). */
export interface IDeniedNotice {
  type: 'denied';
  role: Role;
  reason: string;
}

/** The answer to a save request. */
export interface ISaveReply {
  type: 'save';
  responseTo: number;
  status: SaveStatus;
}

export type Notice = IRoleNotice | IDeniedNotice | ISaveReply;

/** A notice, if `text` is a well-formed one; anything else is null. */
function parseNotice(text: string): Notice | null {
  const body = parseObject(text);
  switch (body?.type) {
    case 'role':
      return isOneOf(body.role, ROLES) &&
        typeof body.can_edit === 'boolean' &&
        typeof body.can_lock === 'boolean' &&
        Array.isArray(body.locked_cells) &&
        body.locked_cells.every((id: unknown) => typeof id === 'string')
        ? (body as unknown as IRoleNotice)
        : null;
    case 'denied':
      return isOneOf(body.role, ROLES) && typeof body.reason === 'string' ? (body as unknown as IDeniedNotice) : null;
    case 'save':
      return typeof body.responseTo === 'number' && isOneOf(body.status, SAVE_STATUSES)
        ? (body as unknown as ISaveReply)
        : null;
    default:
      return null;
  }
}

// -- closes ----------------------------------------------------------------------------

/** What to do after a close. */
export interface ICloseAction {
  retry: boolean;
  message: string;
  /** The first retry's delay, in ms (for restarts, soon). */
  firstDelay?: number;
  /** Ask the user to reload the page (the server says our state cannot be used). */
  reload?: boolean;
}

/** The JSON reason of a RELOAD close (`reload_reason` in protocol.py). */
interface IReloadReason {
  reason: 'permission_denied' | 'unknown_session';
  reloadable: true;
  errorReason: string;
}

function parseReloadReason(text: string): IReloadReason | null {
  const body = parseObject(text);
  return body &&
    isOneOf(body.reason, ['permission_denied', 'unknown_session'] as const) &&
    body.reloadable === true &&
    typeof body.errorReason === 'string'
    ? (body as unknown as IReloadReason)
    : null;
}

/** Turn a close code and reason into what to do and what to tell the user. */
export function describeClose(code: number, reason: string): ICloseAction {
  switch (code) {
    case CloseCode.RELOAD:
      return describeReload(reason);
    case CloseCode.RESTART:
      return { retry: true, firstDelay: 300, message: 'The server is restarting.' };
    case CloseCode.TRY_AGAIN_LATER:
      return { retry: true, message: 'The server asked us to reconnect (too far behind).' };
    case CloseCode.POLICY_VIOLATION:
      return {
        retry: true,
        firstDelay: 5000,
        message: `Limit reached: ${reason || 'too many messages or connections'}.`
      };
    case CloseCode.TOO_BIG:
      return { retry: false, message: describeTooBig(reason) };
    case CloseCode.BAD_REQUEST:
      return { retry: false, message: `The server did not understand us: ${reason}.` };
    case CloseCode.FORBIDDEN:
      return { retry: false, message: 'You no longer have access to this document.' };
    case CloseCode.NOT_FOUND:
      return { retry: false, message: 'This document no longer exists on the server.' };
    case CloseCode.SERVER_ERROR:
      return { retry: true, firstDelay: 2000, message: 'Server error.' };
    default:
      return { retry: true, message: 'Connection lost.' };
  }
}

/**
 * 1009: a message or awareness state over one of the server's size limits. Sending it again
 * gets the same answer (our state would be sent again on reconnect), so we give up and say
 * what was too big. The reason is Tornado's "message too big" or the server's "awareness
 * state over N bytes".
 */
function describeTooBig(reason: string): string {
  const what = reason.startsWith('awareness')
    ? 'Your presence information (name, cursor, selection) was'
    : 'A change (for example a large output, image or paste) was';
  return (
    `${what} too large for the server${reason ? ` (${reason})` : ''} and was not accepted. ` +
    'Reloading will not help until the change is smaller.'
  );
}

function describeReload(reason: string): ICloseAction {
  const parsed = parseReloadReason(reason);
  switch (parsed?.reason) {
    case 'permission_denied':
      return {
        retry: false,
        reload: true,
        message:
          'The server refused a change: ' +
          (parsed.errorReason || 'you may only view this document') +
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
    default:
      return { retry: false, message: `The server closed the document: ${reason || 'unknown reason'}.` };
  }
}

// -- helpers ---------------------------------------------------------------------------

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

function isOneOf<T>(value: unknown, allowed: readonly T[]): value is T {
  return (allowed as readonly unknown[]).includes(value);
}
