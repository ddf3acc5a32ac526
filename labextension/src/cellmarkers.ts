/**
 * Per-cell presence: a coloured edge on every cell where someone else is (their active
 * cell), with their initials; and a lock on locked cells.
 */
import type { Notebook } from '@jupyterlab/notebook';
import type { Awareness } from 'y-protocols/awareness';
import { initials, label, peers } from './awareness';

export function renderCellMarkers(notebook: Notebook, awareness: Awareness): void {
  const byCell = new Map<string, { color: string; initials: string; name: string }[]>();
  for (const peer of peers(awareness)) {
    if (!peer.activeCell) {
      continue;
    }
    const list = byCell.get(peer.activeCell) ?? [];
    list.push({ color: peer.user.color ?? '#888', initials: initials(peer.user), name: label(peer.user) });
    byCell.set(peer.activeCell, list);
  }
  for (const cell of notebook.widgets) {
    const here = byCell.get(cell.model.id);
    let marker = cell.node.querySelector(':scope > .jp-collab-cellMarker') as HTMLElement | null;
    if (!here) {
      cell.removeClass('jp-collab-cellPresent');
      marker?.remove();
      continue;
    }
    cell.addClass('jp-collab-cellPresent');
    cell.node.style.setProperty('--jp-collab-cell-color', here[0].color);
    if (!marker) {
      marker = document.createElement('div');
      marker.className = 'jp-collab-cellMarker';
      cell.node.appendChild(marker);
    }
    marker.title = here.map(p => p.name).join(', ');
    marker.replaceChildren(
      ...here.map(p => {
        const chip = document.createElement('span');
        chip.className = 'jp-collab-cellChip';
        chip.style.backgroundColor = p.color;
        chip.textContent = p.initials;
        return chip;
      })
    );
  }
}
