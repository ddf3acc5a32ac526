// Replays Yjs updates made by Python (tests/test_yjs_compat.py) with the JavaScript
// libraries JupyterLab runs on, and writes what each reader sees after every update.
//
//   node yjs_replay.mjs <labextension dir> <input.json> <output.json>
//
// input:  {"scenarios": {name: [[base64 update, ...] per step, ...]}}
// output: {"yjs": version, "scenarios": {name: {"plain": [cells per step],
//          "lab": [cells per step] | null, "lab_error": string | null, "split": [...]}}}
// where cells are [{"id", "outputs"}] in document order.
//
// "plain" is a Y.Doc of yjs (the version JupyterLab bundles) and its JSON. "lab" is what
// JupyterLab's models show: a YNotebook of @jupyter/ydoc with one CodeCellModel of
// @jupyterlab/cells per cell, created when the cell appears as NotebookModel does, so that
// the events reach CodeCellModel._onSharedModelChanged and OutputAreaModel as in a browser.
// "split" lists texts holding a lone UTF-16 surrogate: a character cut in two.
import { readFileSync, writeFileSync } from 'node:fs';
import { register } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [labextension, inputPath, outputPath] = process.argv.slice(2);
const base = pathToFileURL(join(labextension, 'package.json')).href;
register('./jlab_hooks.mjs', import.meta.url, { data: { base } });

const Y = await import('yjs');
const yjsVersion = JSON.parse(readFileSync(join(labextension, 'node_modules/yjs/package.json'))).version;
const input = JSON.parse(readFileSync(inputPath, 'utf8'));
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function splitTexts(cells, step, found) {
  for (const cell of cells) {
    cell.outputs.forEach((output, index) => {
      for (const value of [output.text, ...Object.values(output.data ?? {})]) {
        if (typeof value === 'string' && LONE_SURROGATE.test(value)) {
          found.push({ step, cell: cell.id, output: index, text: value });
        }
      }
    });
  }
}

function replayPlain(steps) {
  const doc = new Y.Doc();
  const cells = doc.getArray('cells');
  return steps.map(updates => {
    for (const update of updates) Y.applyUpdate(doc, Buffer.from(update, 'base64'));
    return cells.toJSON().map(cell => ({ id: cell.id, outputs: cell.outputs ?? [] }));
  });
}

async function replayLab(steps) {
  const { YNotebook } = await import('@jupyter/ydoc');
  const { CodeCellModel } = await import('@jupyterlab/cells/lib/model.js');
  const notebook = new YNotebook();
  const models = new Map(); // YCodeCell -> CodeCellModel
  try {
    return steps.map(updates => {
      for (const update of updates) Y.applyUpdate(notebook.ydoc, Buffer.from(update, 'base64'));
      for (const [cell, model] of models) {
        if (!notebook.cells.includes(cell)) {
          model.dispose();
          models.delete(cell);
        }
      }
      return notebook.cells.map(cell => {
        if (!models.has(cell)) models.set(cell, new CodeCellModel({ sharedModel: cell }));
        return { id: cell.getId(), outputs: models.get(cell).outputs.toJSON() };
      });
    });
  } finally {
    notebook.dispose(); // its awareness timer would keep node running
  }
}

const output = { yjs: yjsVersion, scenarios: {} };
for (const [name, steps] of Object.entries(input.scenarios)) {
  const result = { plain: replayPlain(steps), lab: null, lab_error: null, split: [] };
  try {
    result.lab = await replayLab(steps);
  } catch (error) {
    result.lab_error = error.stack ?? String(error);
  }
  for (const view of [result.plain, result.lab ?? []]) {
    view.forEach((cells, step) => splitTexts(cells, step, result.split));
  }
  output.scenarios[name] = result;
}
writeFileSync(outputPath, JSON.stringify(output));
process.exit(0);
