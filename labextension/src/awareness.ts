/**
 * What we read from and write to awareness states, in one place.
 *
 * `user` is stamped by the server (identity and `role`); the rest is ours:
 * `activeCell` (cell id), `scrollCell`/`scrollOffset` (the top visible cell and how far
 * it is scrolled out of view), `following` (the client id we follow), `followable`.
 */
import type { Awareness } from 'y-protocols/awareness';

export interface IIdentity {
  username?: string;
  name?: string;
  display_name?: string;
  initials?: string;
  color?: string;
  avatar_url?: string | null;
  role?: string;
  program?: boolean;
}

export interface IPeer {
  clientID: number;
  user: IIdentity;
  activeCell?: string;
  scrollCell?: string;
  scrollOffset?: number;
  following?: number | null;
  followable?: boolean;
}

/** Everyone else in the room who has an identity (the server's own state has none). */
export function peers(awareness: Awareness): IPeer[] {
  const out: IPeer[] = [];
  awareness.getStates().forEach((state, clientID) => {
    if (clientID === awareness.clientID || !state?.user) {
      return;
    }
    out.push({ clientID, ...(state as any) });
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
