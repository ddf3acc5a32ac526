/**
 * Trust in the browser: outputs that reach a code cell through the shared document render
 * untrusted (HTML sanitized, no scripts), whoever wrote them: another person, another tab,
 * a program. Outputs this tab's own kernel execution produced keep JupyterLab's rule.
 *
 * JupyterLab decides trust per cell model: `trusted` is read from the cell's metadata when
 * the model is created, and the output area then makes every output it adds trusted or
 * not after it. Once the owner has run a cell, anything another collaborator writes into
 * its outputs later would render trusted in the owner's page, so an editor could run
 * JavaScript as the owner.
 *
 * The hook: `CodeCellModel._onSharedModelChanged` is where JupyterLab adds outputs that
 * arrive from the shared model to the output area (it runs inside JupyterLab's model
 * mutex, so the echo of the output area's own writes is skipped there). For the length of
 * that call we give the output area a content factory that makes every output model
 * untrusted. Nothing is written back to the shared document (a viewer's write would be
 * refused), and the cell's own `trusted` flag is left alone, so the next run by this tab
 * is trusted again.
 *
 * Not covered here: cell models JupyterLab creates from the shared document (when the
 * notebook loads, or a cell is inserted or moved) take `metadata.trusted` as JupyterLab
 * does; the server lets only owners set it, and clears it when someone else changes a
 * cell's outputs.
 */
import { CodeCellModel, ICodeCellModel } from '@jupyterlab/cells';

type OutputFactory = ICodeCellModel['outputs']['contentFactory'];
type SharedModelChanged = (this: CodeCellModel, sender: unknown, change: { outputsChange?: unknown }) => void;

/** Wrap `factory` so that every output model it creates is untrusted. */
function untrusting(factory: OutputFactory): OutputFactory {
  return { createOutputModel: options => factory.createOutputModel({ ...options, trusted: false }) };
}

let installed = false;

/**
 * Install the hook on JupyterLab's CodeCellModel. Call it before any notebook opens: a
 * model connects the method to its shared model when it is created.
 */
export function untrustSharedOutputs(): void {
  if (installed) {
    return;
  }
  const prototype = CodeCellModel.prototype as unknown as { _onSharedModelChanged?: SharedModelChanged };
  const original = prototype._onSharedModelChanged;
  if (typeof original !== 'function') {
    console.error('jupyter-collab: no CodeCellModel._onSharedModelChanged here: shared outputs keep the cell’s trust');
    return;
  }
  installed = true;
  prototype._onSharedModelChanged = function (sender, change) {
    if (!change.outputsChange) {
      return original.call(this, sender, change);
    }
    const outputs = this.outputs as { contentFactory: OutputFactory };
    const factory = outputs.contentFactory;
    outputs.contentFactory = untrusting(factory);
    try {
      return original.call(this, sender, change);
    } finally {
      outputs.contentFactory = factory;
    }
  };
}
