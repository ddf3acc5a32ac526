/**
 * Everything attached to one open shared document widget: the toolbar item, cell
 * markers, follow mode and read-only, kept in step with awareness and the room's rights.
 */
import type { NotebookPanel } from '@jupyterlab/notebook';
import type { IDocumentWidget } from '@jupyterlab/docregistry';
import type { FileEditor } from '@jupyterlab/fileeditor';
import { renderCellMarkers } from './cellmarkers';
import { FollowController } from './follow';
import { PresenceToolbar } from './presence';
import { IOpenDocument } from './provider';
import { applyCellRights, blockDrops } from './readonly';

export class DocumentCollab {
  constructor(
    readonly widget: NotebookPanel | IDocumentWidget<FileEditor>,
    readonly open: IOpenDocument,
    readonly isNotebook: boolean
  ) {
    const awareness = open.model.awareness;
    if (isNotebook) {
      this.follow = new FollowController(widget as NotebookPanel, awareness, () => this.toolbar.refresh());
    }
    this.toolbar = new PresenceToolbar(open.room, awareness, {
      follow: peer => this.follow?.follow(peer),
      following: () => this.follow?.following ?? null
    });
    widget.toolbar.addItem('jp-collab-presence', this.toolbar);
    widget.addClass('jp-collab-document');
    awareness.on('change', this._onAwareness);
    open.room.rightsChanged.connect(this._applyRights, this);
    if (isNotebook) {
      const panel = widget as NotebookPanel;
      blockDrops(panel.content.node, () => this.viewOnly);
      // New or re-rendered cells get the current rights, markers and locks.
      panel.content.model?.cells.changed.connect(this._refreshCells, this);
      panel.content.model?.sharedModel.changed.connect(this._refreshCells, this);
    }
    void widget.context.ready.then(() => this._applyRights());
    widget.disposed.connect(() => this.dispose());
  }

  /** True when this user may only view the document. */
  get viewOnly(): boolean {
    const rights = this.open.room.rights;
    return !!rights && !rights.canEdit;
  }

  dispose(): void {
    this.open.model.awareness.off('change', this._onAwareness);
    this.follow?.dispose();
    this.toolbar.dispose();
  }

  private _onAwareness = (): void => {
    if (this.isNotebook) {
      renderCellMarkers((this.widget as NotebookPanel).content, this.open.model.awareness);
    }
  };

  private _refreshCells(): void {
    // After JupyterLab has created the cell widgets for this change.
    requestAnimationFrame(() => {
      if (!this.widget.isDisposed) {
        this._applyRights();
        this._onAwareness();
      }
    });
  }

  private _applyRights(): void {
    const rights = this.open.room.rights;
    const viewer = this.viewOnly;
    this.widget.toggleClass('jp-collab-viewOnly', viewer);
    if (this.isNotebook) {
      const panel = this.widget as NotebookPanel;
      if (panel.context.model) {
        panel.context.model.readOnly = viewer;
      }
      applyCellRights(panel.content, rights);
    } else {
      const editor = (this.widget as IDocumentWidget<FileEditor>).content.editor;
      editor.setOption('readOnly', viewer);
    }
    this.toolbar.refresh();
  }

  readonly toolbar: PresenceToolbar;
  readonly follow?: FollowController;
}
