/**
 * The chat view, one source for two builds: the JupyterLab / Notebook 7 extension imports it
 * (labextension/src/index.ts registers it on the page), and esbuild bundles this file into the
 * self-contained ES module hermes_nb/view/static/view.js (`jlpm build:view`), which the kernel
 * sends, once per page, where the extension is absent (VS Code, Colab): see
 * hermes_nb/view/static/loader.js. Plain DOM: no JupyterLab import anywhere under view/.
 */

import { IViewModule, VIEW_PROTOCOL } from './protocol';
import { render } from './render';

export { render, VIEW_PROTOCOL };
export type { IViewModule };

const view: IViewModule = { version: VIEW_PROTOCOL, render };
export default view;
