/**
 * Read-only done in the front end, as the server enforces it: a viewer's editors are
 * read-only and the commands that change the notebook are disabled; a locked cell shows
 * a lock and is read-only for those who may not unlock it.
 *
 * Nothing here writes to the shared document: a viewer's update would be refused and
 * its socket closed. That is why cells get `syncEditable = false` before `readOnly`
 * (otherwise JupyterLab saves `editable: false` into the cell's metadata).
 */
import type { Cell } from '@jupyterlab/cells';
import type { CommandRegistry } from '@lumino/commands';
import type { Notebook } from '@jupyterlab/notebook';
import { IRights } from './room';

/** Commands that change a notebook's content, refused in a view-only notebook. */
const MUTATING = new RegExp(
  '^(notebook:(insert-|delete-|cut-|paste-|move-cell|merge-|split-|change-cell-to|run-|restart-run|' +
    'restart-and-run|clear-|undo|redo|duplicate|replace-|hide-|show-|toggle-render|enable-output|' +
    'disable-output|set-cell|insert-heading|toggle-heading|toggle-all-cell-line)|runmenu:|editmenu:(undo|redo|clear)|' +
    'toc:run-cells|fileeditor:(run|change|replace))'
);

/** Is the cell locked: by its own metadata, or by the policy for this user? */
export function isLocked(cell: Cell, rights: IRights | null): boolean {
  return cell.model.getMetadata('editable') === false || !!rights?.lockedCells.includes(cell.model.id);
}

/** Make the cells of a notebook follow the rights (call again on every change). */
export function applyCellRights(notebook: Notebook, rights: IRights | null): void {
  const viewer = !!rights && !rights.canEdit;
  notebook.toggleClass('jp-collab-viewOnlyNotebook', viewer);
  for (const cell of notebook.widgets) {
    const locked = isLocked(cell, rights);
    cell.toggleClass('jp-collab-locked', locked);
    let badge = cell.node.querySelector(':scope > .jp-collab-lockBadge') as HTMLElement | null;
    if (locked && !badge) {
      badge = document.createElement('div');
      badge.className = 'jp-collab-lockBadge';
      badge.textContent = '🔒';
      cell.node.appendChild(badge);
    } else if (!locked) {
      badge?.remove();
    }
    if (badge) {
      badge.title = rights?.canLock
        ? 'Locked cell: others cannot change it (you can, as an owner)'
        : 'Locked cell: you cannot change it';
    }
    const policyLocked = !!rights?.lockedCells.includes(cell.model.id) && !rights.canLock;
    if (viewer || policyLocked) {
      cell.syncEditable = false;
      cell.readOnly = true;
    } else {
      // Back to JupyterLab's own rule (metadata `editable`), which also handles owners.
      cell.readOnly = cell.model.getMetadata('editable') === false;
      cell.syncEditable = true;
    }
  }
}

/**
 * Refuse mutating commands when the current document is view-only: wraps `execute`
 * (key bindings, menus and toolbar buttons all go through it) and `isEnabled` (so the
 * buttons show disabled).
 */
export function guardCommands(commands: CommandRegistry, isViewOnly: () => boolean, refused: (id: string) => void): void {
  const execute = commands.execute.bind(commands);
  const isEnabled = commands.isEnabled.bind(commands);
  commands.execute = async (id: string, args?: any) => {
    if (MUTATING.test(id) && isViewOnly()) {
      refused(id);
      return undefined;
    }
    return execute(id, args);
  };
  commands.isEnabled = (id: string, args?: any) => {
    if (MUTATING.test(id) && isViewOnly()) {
      return false;
    }
    return isEnabled(id, args);
  };
}

/** Cell drag and drop changes the document without a command: stop it for viewers. */
export function blockDrops(node: HTMLElement, isViewOnly: () => boolean): void {
  for (const type of ['lm-dragenter', 'lm-dragover', 'lm-drop', 'drop', 'paste']) {
    node.addEventListener(
      type,
      event => {
        if (isViewOnly()) {
          event.preventDefault();
          event.stopPropagation();
        }
      },
      true
    );
  }
}
