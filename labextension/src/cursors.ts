/**
 * Remote cursors and selections in CodeMirror, with the person's name beside the caret.
 *
 * JupyterLab core binds editors to the shared text but draws nobody else's cursor. We
 * publish our selection in awareness as `cursors: [{anchor, head, primary, empty}]` (Yjs
 * relative positions: the format the Jupyter project's front end uses too, so both show
 * each other) and draw every remote one. The name label is always shown, or only on
 * hover (setting `cursorNames`), and dims once its owner has been idle for a while.
 */
import { Annotation, EditorSelection, Extension } from '@codemirror/state';
import { EditorView, LayerMarker, RectangleMarker, ViewPlugin, ViewUpdate, layer } from '@codemirror/view';
import { JSONExt } from '@lumino/coreutils';
import * as Y from 'yjs';
import type { Awareness } from 'y-protocols/awareness';
import { IIdentity, identityOf, isClientId, isRecord, label } from './awareness';

/** After this long without moving or typing, a remote label dims. */
export const IDLE_MS = 6000;

const redraw = Annotation.define<boolean>();

/** Most cursors (selection ranges) we draw for one peer. */
const MAX_CURSORS = 16;

/** When each remote client last moved or typed, per awareness. */
const lastActive = new WeakMap<Awareness, Map<number, number>>();

function activity(awareness: Awareness): Map<number, number> {
  let map = lastActive.get(awareness);
  if (!map) {
    map = new Map();
    lastActive.set(awareness, map);
  }
  return map;
}

/** The caret line with its name label, drawn in the editor's cursor layer. */
class CaretMarker implements LayerMarker {
  constructor(
    readonly rect: RectangleMarker,
    readonly color: string,
    readonly name: string,
    readonly idle: boolean,
    readonly beside: boolean
  ) {}

  draw(): HTMLElement {
    const dom = document.createElement('div');
    dom.className = 'jp-collab-caret';
    const label = document.createElement('div');
    label.className = 'jp-collab-caretLabel';
    dom.appendChild(label);
    this.update(dom);
    return dom;
  }

  update(dom: HTMLElement): boolean {
    dom.style.left = `${this.rect.left}px`;
    dom.style.top = `${this.rect.top}px`;
    dom.style.height = `${this.rect.height}px`;
    dom.style.borderLeftColor = this.color;
    dom.classList.toggle('jp-mod-idle', this.idle);
    dom.classList.toggle('jp-mod-beside', this.beside);
    const label = dom.firstChild as HTMLElement;
    label.textContent = this.name;
    label.style.backgroundColor = this.color;
    return true;
  }

  eq(other: LayerMarker): boolean {
    return (
      other instanceof CaretMarker &&
      other.rect.eq(this.rect) &&
      other.color === this.color &&
      other.name === this.name &&
      other.idle === this.idle &&
      other.beside === this.beside
    );
  }
}

/** A selection rectangle in its owner's colour. */
class SelectionMarker implements LayerMarker {
  constructor(readonly rect: RectangleMarker, readonly color: string) {}
  draw(): HTMLElement {
    const dom = this.rect.draw();
    dom.style.backgroundColor = this.color;
    return dom;
  }
  update(dom: HTMLElement, prev: LayerMarker): boolean {
    dom.style.backgroundColor = this.color;
    return this.rect.update(dom, (prev as SelectionMarker).rect);
  }
  eq(other: LayerMarker): boolean {
    return other instanceof SelectionMarker && other.rect.eq(this.rect) && other.color === this.color;
  }
}

/** A Yjs id in JSON (`{client, clock}`); `null`/absent too when `optional`. */
function isYId(value: unknown, optional: boolean): boolean {
  if (value === null || value === undefined) {
    return optional;
  }
  return isRecord(value) && isClientId(value.client) && isClientId(value.clock);
}

/**
 * A relative position from its JSON form, if well-formed: `item` and `type` are Yjs ids,
 * `tname` names a root type (a text file's text is one). A `tname` our document does not
 * have is refused, as resolving it would create that root type here.
 */
function relativePosition(value: unknown, ydoc: Y.Doc): Y.RelativePosition | null {
  if (!isRecord(value) || !isYId(value.item, true) || !isYId(value.type, true)) {
    return null;
  }
  const { item, type, tname, assoc } = value;
  const root = typeof tname === 'string' && ydoc.share.has(tname);
  if ((tname != null && !root) || (item == null && type == null && !root)) {
    return null;
  }
  return assoc == null || Number.isSafeInteger(assoc) ? Y.createRelativePositionFromJSON(value) : null;
}

/** One published cursor resolved in `ytext`, or null (malformed, elsewhere, or gone). */
function resolveCursor(cursor: unknown, ytext: Y.Text, ydoc: Y.Doc): { anchor: number; head: number } | null {
  if (!isRecord(cursor)) {
    return null;
  }
  const anchor = relativePosition(cursor.anchor, ydoc);
  const head = relativePosition(cursor.head, ydoc);
  if (!anchor || !head) {
    return null;
  }
  try {
    const from = Y.createAbsolutePositionFromRelativePosition(anchor, ydoc);
    const to = Y.createAbsolutePositionFromRelativePosition(head, ydoc);
    return from?.type === ytext && to?.type === ytext ? { anchor: from.index, head: to.index } : null;
  } catch {
    return null; // a position Yjs cannot resolve: skip it, draw everyone else's
  }
}

interface IRemoteRange {
  clientID: number;
  user: IIdentity;
  anchor: number;
  head: number;
}

/** Every remote cursor in this editor's text, resolved to positions. */
function remoteRanges(awareness: Awareness, ytext: Y.Text): IRemoteRange[] {
  const ydoc = ytext.doc;
  const out: IRemoteRange[] = [];
  if (!ydoc) {
    return out;
  }
  awareness.getStates().forEach((state, clientID) => {
    if (clientID === awareness.clientID || !Array.isArray(state?.cursors)) {
      return;
    }
    const user = identityOf(state.user);
    for (const cursor of state.cursors.slice(0, MAX_CURSORS)) {
      const range = resolveCursor(cursor, ytext, ydoc);
      if (range) {
        out.push({ clientID, user, ...range });
      }
    }
  });
  return out;
}

/** The CodeMirror extension for one editor bound to `ytext`. */
export function remoteCursors(awareness: Awareness, ytext: Y.Text): Extension {
  const seen = activity(awareness);

  const carets = layer({
    above: true,
    class: 'jp-collab-carets',
    markers(view) {
      const now = Date.now();
      const markers: LayerMarker[] = [];
      const length = view.state.doc.length;
      for (const r of remoteRanges(awareness, ytext)) {
        const pos = Math.min(r.head, length);
        const color = r.user.color ?? '#888';
        const name = label(r.user);
        const idle = now - (seen.get(r.clientID) ?? now) > IDLE_MS;
        for (const rect of RectangleMarker.forRange(view, 'jp-collab-caretRect', EditorSelection.cursor(pos))) {
          // A label above the first line would be clipped by the editor: put it beside.
          markers.push(new CaretMarker(rect, color, name, idle, rect.top < 14));
        }
      }
      return markers;
    },
    update(update) {
      return update.docChanged || update.transactions.some(t => t.annotation(redraw));
    }
  });

  const selections = layer({
    above: false,
    class: 'jp-collab-selections',
    markers(view) {
      const markers: LayerMarker[] = [];
      const length = view.state.doc.length;
      for (const r of remoteRanges(awareness, ytext)) {
        if (r.anchor === r.head) {
          continue;
        }
        const range = EditorSelection.range(Math.min(r.anchor, length), Math.min(r.head, length));
        for (const rect of RectangleMarker.forRange(view, 'jp-collab-selection', range)) {
          markers.push(new SelectionMarker(rect, r.user.color ?? '#888'));
        }
      }
      return markers;
    },
    update(update) {
      return update.docChanged || update.transactions.some(t => t.annotation(redraw));
    }
  });

  const exchange = ViewPlugin.fromClass(
    class {
      constructor(readonly view: EditorView) {
        awareness.on('change', this.onChange);
        ytext.doc?.on('afterTransaction', this.onTransaction);
      }

      /** Remote awareness moved: note who, and redraw (again when they turn idle). */
      onChange = (changes: { added: number[]; updated: number[]; removed: number[] }): void => {
        const ids = [...changes.added, ...changes.updated, ...changes.removed].filter(
          id => id !== awareness.clientID
        );
        if (!ids.length) {
          return;
        }
        const now = Date.now();
        for (const id of [...changes.added, ...changes.updated]) {
          if (id !== awareness.clientID) {
            seen.set(id, now);
          }
        }
        this.refresh();
      };

      /** Remote typing at the end of a line moves no relative position: count it too. */
      onTransaction = (tr: Y.Transaction): void => {
        if (tr.local) {
          return;
        }
        const now = Date.now();
        tr.afterState.forEach((clock, client) => {
          if (client !== awareness.clientID && tr.beforeState.get(client) !== clock) {
            seen.set(client, now);
          }
        });
      };

      refresh(): void {
        this.view.dispatch({ annotations: [redraw.of(true)] });
        window.clearTimeout(this.idleTimer);
        this.idleTimer = window.setTimeout(() => {
          if (!this.destroyed) {
            this.view.dispatch({ annotations: [redraw.of(true)] });
          }
        }, IDLE_MS + 100);
      }

      /** Publish our own selection (relative positions survive concurrent edits). */
      update(update: ViewUpdate): void {
        if (!update.docChanged && !update.selectionSet && !update.focusChanged) {
          return;
        }
        const local = awareness.getLocalState();
        if (!local) {
          return;
        }
        const hasFocus = update.view.hasFocus && update.view.dom.ownerDocument.hasFocus();
        if (!hasFocus) {
          return; // keep the last position: it is where we will come back to
        }
        const selection = update.state.selection;
        const cursors = selection.ranges.map(r => ({
          anchor: Y.createRelativePositionFromTypeIndex(ytext, r.anchor),
          head: Y.createRelativePositionFromTypeIndex(ytext, r.head),
          primary: r === selection.main,
          empty: r.empty
        }));
        if (!JSONExt.deepEqual(JSON.parse(JSON.stringify(cursors)), local.cursors ?? null)) {
          awareness.setLocalStateField('cursors', JSON.parse(JSON.stringify(cursors)));
        }
      }

      destroy(): void {
        this.destroyed = true;
        window.clearTimeout(this.idleTimer);
        awareness.off('change', this.onChange);
        ytext.doc?.off('afterTransaction', this.onTransaction);
      }

      idleTimer = 0;
      destroyed = false;
    }
  );

  return [carets, selections, exchange];
}
