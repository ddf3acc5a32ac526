// Module hooks that let node load JupyterLab's model code as the browser bundle does
// (tests/test_yjs_compat.py). JupyterLab's packages ship ES modules without
// "type": "module" and with extensionless relative imports, both of which webpack accepts
// and node does not; their package entry points also re-export widgets, which pull in the
// DOM, React and CSS. The hooks fix the first two and narrow three entry points to the
// model modules a CodeCellModel needs; the model code itself is loaded as shipped.
import { readFile } from 'node:fs/promises';

let base; // the labextension's package.json URL: bare imports from tests/js resolve there
const ENTRY_POINTS = {
  '@jupyterlab/outputarea': '@jupyterlab/outputarea/lib/model.js',
  '@jupyterlab/codeeditor': '@jupyterlab/codeeditor/lib/editor.js',
  '@jupyterlab/rendermime': '@jupyterlab/rendermime/lib/jupyter-collab-models.js'
};
const RENDERMIME_MODELS =
  "export * from './outputmodel.js'; export * from './attachmentmodel.js';\n" +
  // used only when attachments are rendered, never by these tests
  'export const imageRendererFactory = { mimeTypes: [] };\n';

export function initialize(data) {
  base = data.base;
}

export async function resolve(specifier, context, nextResolve) {
  const isBare = !/^(\.|\/|[a-z]+:)/.test(specifier);
  if (isBare && !context.parentURL?.includes('/node_modules/')) {
    context = { ...context, parentURL: base };
  }
  if (specifier in ENTRY_POINTS) {
    const target = new URL(`node_modules/${ENTRY_POINTS[specifier]}`, base).href;
    return { url: target, format: 'module', shortCircuit: true };
  }
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (!['ERR_MODULE_NOT_FOUND', 'ERR_UNSUPPORTED_DIR_IMPORT'].includes(error.code)) throw error;
    for (const suffix of ['.js', '/index.js']) {
      try {
        return await nextResolve(specifier + suffix, context);
      } catch {
        // the next suffix
      }
    }
    throw error;
  }
}

export async function load(url, context, nextLoad) {
  if (url.endsWith('/rendermime/lib/jupyter-collab-models.js')) {
    return { format: 'module', source: RENDERMIME_MODELS, shortCircuit: true };
  }
  if (url.endsWith('.css') || url.endsWith('.svg')) {
    return { format: 'module', source: 'export default "";', shortCircuit: true };
  }
  if (url.includes('/node_modules/@jupyterlab/') && url.endsWith('.js')) {
    const source = await readFile(new URL(url), 'utf8');
    const format = /^(import|export) /m.test(source) ? 'module' : 'commonjs';
    return nextLoad(url, { ...context, format });
  }
  return nextLoad(url, context);
}
