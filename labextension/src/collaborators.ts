/**
 * Who is on which document: our side of JupyterLab's awareness-only room
 * `JupyterLab:globalAwareness`, and a side panel listing it.
 *
 * Everyone in that room sees what we publish there, whatever their access to our files,
 * so we publish only what the panel shows: `documents`, the paths of the shared documents
 * this tab has joined (the server let us in; not those it refused or stopped serving us),
 * and `current`, the one of them in front (else null). The server stamps `user`.
 */
import * as Y from 'yjs';
import { Awareness } from 'y-protocols/awareness';
import { ServerConnection, User } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';
import { LabIcon } from '@jupyterlab/ui-components';
import { avatar, label, peers } from './awareness';
import type { IOpenDocument } from './provider';
import { RoomConnection } from './room';
import { renderStatus } from './status';

export const GLOBAL_ROOM = 'JupyterLab:globalAwareness';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
  '<g class="jp-icon3" fill="#616161"><circle cx="8" cy="8" r="4"/><circle cx="17" cy="9" r="3"/>' +
  '<path d="M1 20c0-4 3-6 7-6s7 2 7 6z"/><path d="M14 20c0-2.5-.8-4.3-2-5.4 1.4-.6 3-.6 5-.6 3.5 0 6 2 6 6z"/></g></svg>';

export const collaboratorsIcon = new LabIcon({ name: 'jupyter-collab:collaborators', svgstr: ICON_SVG });

export class GlobalPresence {
  constructor(serverSettings: ServerConnection.ISettings, user: User.IManager) {
    this.doc = new Y.Doc();
    this.awareness = new Awareness(this.doc);
    void user.ready.then(() => this.awareness.setLocalStateField('user', user.identity)).catch(() => undefined);
    this.room = new RoomConnection({ roomId: GLOBAL_ROOM, doc: this.doc, awareness: this.awareness, serverSettings });
  }

  /** Publish `paths` and which of them is in front (`current`, if it is one of them). */
  setDocuments(paths: string[], current: string | null): void {
    current = current !== null && paths.includes(current) ? current : null;
    const state = this.awareness.getLocalState() ?? {};
    if (JSON.stringify(state.documents) !== JSON.stringify(paths)) {
      this.awareness.setLocalStateField('documents', paths);
    }
    if (state.current !== current) {
      this.awareness.setLocalStateField('current', current);
    }
  }

  readonly doc: Y.Doc;
  readonly awareness: Awareness;
  readonly room: RoomConnection;
}

/** The paths to publish: shared documents we have joined and still may see, once each. */
export function joinedPaths(documents: IOpenDocument[]): string[] {
  const joined = documents.filter(open => open.room.synced && open.room.status.status !== 'failed');
  return [...new Set(joined.map(open => open.path))];
}

/** The left-sidebar panel: one row per person, with the documents they have open. */
export class CollaboratorsPanel extends Widget {
  constructor(readonly presence: GlobalPresence, readonly open: (path: string) => void) {
    super();
    this.id = 'jp-collab-collaborators';
    this.title.icon = collaboratorsIcon;
    this.title.caption = 'Collaborators';
    this.addClass('jp-collab-panel');
    const header = document.createElement('h2');
    header.textContent = 'Collaborators';
    this._status = document.createElement('span');
    this._list = document.createElement('ul');
    this._list.className = 'jp-collab-people';
    this.node.append(header, this._status, this._list);
    presence.awareness.on('change', this._render);
    presence.room.statusChanged.connect(this._render, this);
    this._render();
  }

  private _render = (): void => {
    renderStatus(this._status, this.presence.room.status);
    const people = peers(this.presence.awareness);
    if (!people.length) {
      const empty = document.createElement('li');
      empty.className = 'jp-collab-nobody';
      empty.textContent = 'Nobody else is here.';
      this._list.replaceChildren(empty);
      return;
    }
    this._list.replaceChildren(
      ...people.map(peer => {
        const item = document.createElement('li');
        item.className = 'jp-collab-person';
        item.dataset.username = peer.user.username ?? '';
        const name = document.createElement('span');
        name.className = 'jp-collab-personName';
        name.textContent = label(peer.user);
        name.title = peer.user.name ?? '';
        const docs = document.createElement('ul');
        docs.className = 'jp-collab-personDocs';
        for (const path of peer.documents ?? []) {
          const doc = document.createElement('li');
          doc.textContent = path;
          doc.title = `Open ${path}`;
          doc.classList.toggle('jp-mod-current', peer.current === path);
          doc.onclick = () => this.open(path);
          docs.appendChild(doc);
        }
        item.append(avatar(peer.user), name, docs);
        return item;
      })
    );
  };

  private _status: HTMLElement;
  private _list: HTMLElement;
}
