/**
 * The toolbar item of a shared document: connection status, "View only" badge, who
 * follows us, and the avatars of everyone else here (click one to follow them).
 */
import { Widget } from '@lumino/widgets';
import type { Awareness } from 'y-protocols/awareness';
import { IPeer, avatar, label, peers } from './awareness';
import { IRights, RoomConnection } from './room';
import { renderStatus } from './status';

export interface IPresenceCallbacks {
  /** Follow (or stop following, with null) a peer. */
  follow(peer: IPeer | null): void;
  /** Whom we follow now. */
  following(): number | null;
}

export class PresenceToolbar extends Widget {
  constructor(
    readonly room: RoomConnection,
    readonly awareness: Awareness,
    readonly callbacks: IPresenceCallbacks
  ) {
    super();
    this.addClass('jp-collab-toolbar');
    this._status = document.createElement('span');
    this._status.onclick = () => room.retryNow();
    this._badge = document.createElement('span');
    this._badge.className = 'jp-collab-viewOnly';
    this._badge.textContent = 'View only';
    this._badge.title = 'You can see every change live, but not edit this document';
    this._followed = document.createElement('span');
    this._followed.className = 'jp-collab-followedBy';
    this._avatars = document.createElement('span');
    this._avatars.className = 'jp-collab-avatars';
    this.node.append(this._status, this._badge, this._followed, this._avatars);
    awareness.on('change', this._render);
    room.statusChanged.connect(this._render, this);
    room.rightsChanged.connect(this._render, this);
    this._render();
  }

  dispose(): void {
    this.awareness.off('change', this._render);
    super.dispose();
  }

  /** Re-render (also when follow mode starts or stops). */
  refresh(): void {
    this._render();
  }

  private _render = (): void => {
    if (this.isDisposed) {
      return;
    }
    renderStatus(this._status, this.room.status);
    const rights: IRights | null = this.room.rights;
    this._badge.style.display = rights && !rights.canEdit ? '' : 'none';
    const others = peers(this.awareness);
    const me = this.awareness.clientID;
    const followers = others.filter(p => p.following === me);
    this._followed.style.display = followers.length ? '' : 'none';
    this._followed.textContent = followers.length
      ? `${followers.map(p => label(p.user)).join(', ')} following you`
      : '';
    const following = this.callbacks.following();
    this._avatars.replaceChildren(
      ...others.map(peer => {
        const el = avatar(peer.user);
        el.dataset.client = String(peer.clientID);
        el.dataset.username = peer.user.username ?? '';
        const role = peer.user.role ? ` (${peer.user.role})` : '';
        const followable = peer.followable !== false;
        el.title = `${peer.user.name || label(peer.user)}${role}\n${
          following === peer.clientID
            ? 'Following: click to stop'
            : followable
              ? 'Click to follow'
              : 'Does not allow being followed'
        }`;
        el.classList.toggle('jp-mod-following', following === peer.clientID);
        el.setAttribute('role', 'button');
        el.onclick = event => {
          event.stopPropagation();
          if (following === peer.clientID) {
            this.callbacks.follow(null);
          } else if (followable) {
            this.callbacks.follow(peer);
          }
        };
        return el;
      })
    );
  };

  private _status: HTMLElement;
  private _badge: HTMLElement;
  private _followed: HTMLElement;
  private _avatars: HTMLElement;
}
