/**
 * The connection indicator: connected / reconnecting / offline with unsaved edits, and
 * the message of a close the user must act on.
 */
import { IStatus } from './room';

export function describeStatus(status: IStatus): { text: string; title: string; kind: string } {
  switch (status.status) {
    case 'connected':
      return { text: 'Connected', title: 'Live: changes are shared and saved by the server', kind: 'connected' };
    case 'connecting':
      return { text: 'Connecting…', title: 'Joining the shared document', kind: 'connecting' };
    case 'reconnecting': {
      const when = status.retryInMs
        ? ` Next try in ${Math.ceil(status.retryInMs / 1000)} s (click to try now).`
        : '';
      return status.unsentEdits
        ? {
            text: 'Offline · unsaved edits',
            title: `${status.message || 'Disconnected.'} Your edits are kept and will be sent on reconnect.${when}`,
            kind: 'offline'
          }
        : { text: 'Reconnecting…', title: `${status.message || 'Disconnected.'}${when}`, kind: 'reconnecting' };
    }
    case 'failed':
      return { text: 'Disconnected', title: status.message, kind: 'failed' };
  }
}

/** Render into an element of the toolbar (or status bar). */
export function renderStatus(el: HTMLElement, status: IStatus): void {
  const { text, title, kind } = describeStatus(status);
  el.className = `jp-collab-status jp-collab-status-${kind}`;
  el.dataset.status = kind;
  el.title = title;
  el.textContent = text;
}
