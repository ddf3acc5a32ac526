/**
 * What we read from and write to awareness states, in one place.
 *
 * `user` is stamped by the server (identity and `role`); the rest is ours:
 * `activeCell` (cell id), `scrollCell`/`scrollOffset` (the top visible cell and how far
 * it is scrolled out of view), `following` (the client id we follow), `followable`, and in
 * the global room `documents`/`current` (see collaborators.ts).
 *
 * Every state is another client's word: anything may be of the wrong type or huge. Peers
 * are read through `peerOf`, which keeps only well-formed fields (bounded strings, finite
 * numbers) and drops the rest, so one malformed peer cannot break what we draw for the
 * others. Fields a client declares about itself in `user` (`program`, `program_name`,
 * `agent`, listed by the server in `user.self_declared`) are not shown anywhere: the
 * server does not vouch for them.
 */
import type { Awareness } from 'y-protocols/awareness';

export interface IIdentity {
  username?: string;
  name?: string;
  display_name?: string;
  initials?: string;
  color?: string;
  avatar_url?: string;
  role?: string;
}

export interface IPeer {
  clientID: number;
  user: IIdentity;
  activeCell?: string;
  scrollCell?: string;
  scrollOffset?: number;
  following?: number | null;
  followable?: boolean;
  /** Global room: the shared documents this peer has open, and the one in front. */
  documents?: string[];
  current?: string;
}

/** Longest name, initials or role we show (longer ones are cut). */
const MAX_LABEL = 64;
/** Longest cell id or path we take (longer ones are dropped: they match nothing). */
const MAX_ID = 1024;
const MAX_URL = 2048;
const MAX_COLOR = 64;
/** Most documents we list for one peer. */
const MAX_DOCUMENTS = 50;

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A non-empty string, cut to `max` characters. */
function shortText(value: unknown, max = MAX_LABEL): string | undefined {
  if (typeof value !== 'string' || !value) {
    return undefined;
  }
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

/** A non-empty string of at most `max` characters, else nothing. */
function boundedId(value: unknown, max = MAX_ID): string | undefined {
  return typeof value === 'string' && value && value.length <= max ? value : undefined;
}

/** A CSS colour (names, hex, functions, `var(...)`), else nothing. */
function cssColor(value: unknown): string | undefined {
  return typeof value === 'string' && value.length <= MAX_COLOR && CSS.supports('color', value) ? value : undefined;
}

/** A picture address: http(s), relative to this page, or an inline image. */
function imageUrl(value: unknown): string | undefined {
  if (typeof value !== 'string' || !value || value.length > MAX_URL) {
    return undefined;
  }
  try {
    const url = new URL(value, window.location.href);
    const ok = url.protocol === 'https:' || url.protocol === 'http:' || value.startsWith('data:image/');
    return ok ? value : undefined;
  } catch {
    return undefined;
  }
}

/** A Yjs client id (a safe non-negative integer). */
export function isClientId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/**
 * The identity fields of a `user` value, each checked; nothing else from it. The server
 * lists in `self_declared` the keys a client set itself: those are never taken as identity.
 */
export function identityOf(stamped: unknown): IIdentity {
  if (!isRecord(stamped)) {
    return {};
  }
  const declared = Array.isArray(stamped.self_declared) ? stamped.self_declared : [];
  const user = Object.fromEntries(Object.entries(stamped).filter(([key]) => !declared.includes(key)));
  return {
    username: shortText(user.username),
    name: shortText(user.name),
    display_name: shortText(user.display_name),
    initials: shortText(user.initials, 3),
    color: cssColor(user.color),
    avatar_url: imageUrl(user.avatar_url),
    role: shortText(user.role, 16)
  };
}

/** The documents list of a global-room state: bounded paths, at most MAX_DOCUMENTS. */
function documentsOf(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) {
    return undefined;
  }
  const paths = value.slice(0, MAX_DOCUMENTS).map(path => boundedId(path));
  return [...new Set(paths.filter((path): path is string => path !== undefined))];
}

/** A peer from its awareness state, or null if it has no identity (the server's own). */
export function peerOf(clientID: number, state: unknown): IPeer | null {
  if (!isRecord(state) || !isRecord(state.user)) {
    return null;
  }
  const { activeCell, scrollCell, scrollOffset, following, followable, documents, current } = state;
  return {
    clientID,
    user: identityOf(state.user),
    activeCell: boundedId(activeCell),
    scrollCell: boundedId(scrollCell),
    scrollOffset: Number.isFinite(scrollOffset) ? (scrollOffset as number) : undefined,
    following: following === null || isClientId(following) ? following : undefined,
    followable: typeof followable === 'boolean' ? followable : undefined,
    documents: documentsOf(documents),
    current: boundedId(current)
  };
}

/** Everyone else in the room who has an identity (the server's own state has none). */
export function peers(awareness: Awareness): IPeer[] {
  const out: IPeer[] = [];
  awareness.getStates().forEach((state, clientID) => {
    const peer = clientID === awareness.clientID ? null : peerOf(clientID, state);
    if (peer) {
      out.push(peer);
    }
  });
  return out.sort((a, b) => label(a.user).localeCompare(label(b.user)) || a.clientID - b.clientID);
}

export function label(user: IIdentity | undefined): string {
  return user?.display_name || user?.name || user?.username || 'Anonymous';
}

export function initials(user: IIdentity | undefined): string {
  if (user?.initials) {
    return user.initials;
  }
  return label(user)
    .split(/\s+/)
    .map(w => w[0] ?? '')
    .join('')
    .slice(0, 2)
    .toUpperCase();
}

/** An avatar: the picture when the identity has one, else initials on the colour. */
export function avatar(user: IIdentity | undefined, className = 'jp-collab-avatar'): HTMLElement {
  const el = document.createElement('span');
  el.className = className;
  el.style.backgroundColor = user?.color ?? '#888';
  el.textContent = initials(user);
  if (user?.avatar_url) {
    const img = document.createElement('img');
    img.src = user.avatar_url;
    img.alt = '';
    img.onerror = () => img.remove(); // initials stay underneath
    el.appendChild(img);
  }
  return el;
}
