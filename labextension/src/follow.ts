/**
 * Follow mode: our view goes where the followed person's goes (their active cell and the
 * cell at the top of their view); any action of our own stops it. We publish our active
 * cell and scroll position for those who follow us, and `following` so the followed
 * person sees it.
 */
import type { NotebookPanel } from '@jupyterlab/notebook';
import { Notification } from '@jupyterlab/apputils';
import type { Awareness } from 'y-protocols/awareness';
import { IPeer, label, peerOf } from './awareness';

export class FollowController {
  constructor(
    readonly panel: NotebookPanel,
    readonly awareness: Awareness,
    readonly changed: () => void
  ) {
    const notebook = panel.content;
    notebook.activeCellChanged.connect(this._publishActive, this);
    this._publishActive();
    notebook.node.addEventListener('scroll', this._onScroll, true);
    // Any action of our own ends follow mode (programmatic scrolls raise none of these).
    for (const type of ['keydown', 'wheel', 'mousedown', 'touchstart']) {
      panel.node.addEventListener(type, this._stopOnOwnAction, true);
    }
    awareness.on('change', this._onAwareness);
  }

  get following(): number | null {
    return this._following;
  }

  follow(peer: IPeer | null): void {
    this._following = peer?.clientID ?? null;
    this.awareness.setLocalStateField('following', this._following);
    this.panel.toggleClass('jp-collab-followMode', this._following !== null);
    if (peer) {
      Notification.info(`Following ${label(peer.user)}. Click, scroll or type to stop.`, { autoClose: 3000 });
      this._lastTarget = '';
      this._goTo(peer);
    }
    this.changed();
  }

  dispose(): void {
    this.awareness.off('change', this._onAwareness);
    this.panel.node.removeEventListener('scroll', this._onScroll, true);
    for (const type of ['keydown', 'wheel', 'mousedown', 'touchstart']) {
      this.panel.node.removeEventListener(type, this._stopOnOwnAction, true);
    }
  }

  private _stopOnOwnAction = (event: Event): void => {
    if (this._following === null) {
      return;
    }
    // Clicking an avatar switches whom we follow: the avatar's own handler decides.
    if ((event.target as HTMLElement)?.closest?.('.jp-collab-avatar')) {
      return;
    }
    this.follow(null);
  };

  private _publishActive(): void {
    const id = this.panel.content.activeCell?.model.id;
    if (id && this.awareness.getLocalState()?.activeCell !== id) {
      this.awareness.setLocalStateField('activeCell', id);
    }
  }

  /** Publish the top visible cell and how far into it we scrolled (throttled). */
  private _onScroll = (): void => {
    if (this._scrollTimer) {
      return;
    }
    this._scrollTimer = window.setTimeout(() => {
      this._scrollTimer = 0;
      const top = this.panel.content.node.getBoundingClientRect().top;
      for (const cell of this.panel.content.widgets) {
        const rect = cell.node.getBoundingClientRect();
        if (rect.height && rect.bottom > top) {
          this.awareness.setLocalStateField('scrollCell', cell.model.id);
          this.awareness.setLocalStateField('scrollOffset', Math.round(top - rect.top));
          break;
        }
      }
    }, 150);
  };

  private _onAwareness = (): void => {
    if (this._following === null) {
      return;
    }
    const peer = peerOf(this._following, this.awareness.getStates().get(this._following));
    if (!peer) {
      Notification.info('The person you followed left.', { autoClose: 3000 });
      this.follow(null);
      return;
    }
    this._goTo(peer);
  };

  private _goTo(peer: IPeer): void {
    const notebook = this.panel.content;
    const target = `${peer.activeCell}|${peer.scrollCell}|${peer.scrollOffset}`;
    if (target === this._lastTarget) {
      return;
    }
    this._lastTarget = target;
    const cells = notebook.widgets;
    const active = cells.findIndex(c => c.model.id === peer.activeCell);
    if (active >= 0 && notebook.activeCellIndex !== active) {
      notebook.activeCellIndex = active;
    }
    const topIndex = cells.findIndex(c => c.model.id === peer.scrollCell);
    if (topIndex >= 0) {
      void notebook.scrollToItem(topIndex, 'start').then(() => {
        notebook.node.scrollTop += peer.scrollOffset ?? 0;
      });
    } else if (active >= 0) {
      void notebook.scrollToCell(cells[active], 'center');
    }
  }

  private _following: number | null = null;
  private _lastTarget = '';
  private _scrollTimer = 0;
}
