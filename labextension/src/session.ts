/**
 * Where a room is: the session request that finds the room of a file, and the room's
 * WebSocket URL (docs/wire-protocol.md, "Routes" and "Room ids").
 *
 * A connection asks again before every (re)connect: the server's sessionId changes when
 * it restarts, and a renamed file keeps its id but not its path.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The body of a session request, and the path it is for. */
export interface ISessionRequest {
  path: string;
  format: string;
  type: string;
}

/** A session answer: where the room of a file is. */
interface ISession {
  format: string;
  type: string;
  fileId: string;
  sessionId: string;
}

/** A room to join: a fixed id (awareness-only rooms), or the file a session request names. */
export interface IRoomTarget {
  roomId?: string;
  session?: ISessionRequest;
}

/** Thrown for session answers that retrying will not change (400, 403, 404). */
export class FatalSessionError extends Error {}

/** The WebSocket URL of the room, asking the server for the file's session if need be. */
export async function roomUrl(target: IRoomTarget, settings: ServerConnection.ISettings): Promise<string> {
  let roomId = target.roomId ?? '';
  const params = new URLSearchParams();
  if (target.session) {
    const answer = await requestSession(target.session, settings);
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

/** PUT /api/collaboration/session/{path}: the room of a file (400/403/404 are final). */
async function requestSession(request: ISessionRequest, settings: ServerConnection.ISettings): Promise<ISession> {
  const url = URLExt.join(settings.baseUrl, 'api/collaboration/session', encodeURIComponent(request.path));
  const response = await ServerConnection.makeRequest(
    url,
    { method: 'PUT', body: JSON.stringify({ format: request.format, type: request.type }) },
    settings
  );
  if (response.status === 403) {
    throw new FatalSessionError('You do not have access to this document.');
  }
  if (response.status === 404) {
    // The server gives the same answer for no access, so that it tells nobody what exists.
    throw new FatalSessionError('This document does not exist on the server, or you have no access to it.');
  }
  if (response.status === 400) {
    // A refused spelling of the path, an unreadable file, an unsupported type.
    throw new FatalSessionError(`The server refused to open this document: ${await errorMessage(response)}.`);
  }
  if (!response.ok) {
    throw new Error(`session request failed: ${response.status}`);
  }
  return (await response.json()) as ISession;
}

/** The message of a jupyter_server error answer (`{"message": ...}`), else the HTTP status. */
async function errorMessage(response: Response): Promise<string> {
  try {
    const body: unknown = await response.json();
    const message = (body as { message?: unknown } | null)?.message;
    if (typeof message === 'string' && message) {
      return message;
    }
  } catch {
    // not JSON: fall through
  }
  return `${response.status} ${response.statusText}`.trim();
}
