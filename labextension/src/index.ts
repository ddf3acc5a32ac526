/**
 * jupyter-collab's JupyterLab front end: notebooks and text files open on our server's
 * rooms, with presence, remote cursors, follow mode and read-only roles.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, showDialog, Notification } from '@jupyterlab/apputils';
import { EditorExtensionRegistry, IEditorExtensionRegistry } from '@jupyterlab/codemirror';
import { IDocumentWidget } from '@jupyterlab/docregistry';
import { FileEditor, IEditorTracker, IEditorWidgetFactory } from '@jupyterlab/fileeditor';
import { INotebookTracker, INotebookWidgetFactory, NotebookPanel, NotebookWidgetFactory } from '@jupyterlab/notebook';
import { Contents } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';
import { CollaboratorsPanel, GlobalPresence, joinedPaths } from './collaborators';
import { remoteCursors } from './cursors';
import { DocumentCollab } from './document';
import { CollabContentProvider, IOpenDocument, PROVIDER_ID } from './provider';
import { guardCommands } from './readonly';
import { RoomConnection } from './room';
import { applySettings } from './settings';
import { renderStatus } from './status';
import { untrustSharedOutputs } from './trust';

const PLUGIN_ID = 'jupyter-collab:plugin';

/** The Jupyter project's collaboration front end: both cannot own the same documents. */
const OTHER_FRONT_END = [
  '@jupyter/docprovider-extension:content-provider',
  '@jupyter/docprovider-extension:ynotebook',
  '@jupyter/collaboration-extension:rtcGlobalAwareness'
];

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Live collaboration on jupyter-collab rooms: presence, cursors, follow mode, read-only roles',
  autoStart: true,
  requires: [INotebookWidgetFactory, IEditorExtensionRegistry],
  optional: [IEditorWidgetFactory, INotebookTracker, IEditorTracker, ILabShell, ISettingRegistry, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    notebookFactory: NotebookWidgetFactory.IFactory,
    extensions: IEditorExtensionRegistry,
    editorFactory: { contentProviderId?: string } | null,
    notebooks: INotebookTracker | null,
    editors: IEditorTracker | null,
    labShell: ILabShell | null,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null
  ) => {
    const others = OTHER_FRONT_END.filter(id => app.hasPlugin(id));
    if (others.length) {
      // Two providers for one document would fight over it: step aside, and say so.
      void showDialog({
        title: 'Two collaboration front ends are installed',
        body:
          "The Jupyter project's collaboration extension (@jupyter/docprovider-extension / " +
          '@jupyter/collaboration-extension) is enabled, so jupyter-collab’s own front end is ' +
          'switched off: no presence avatars, follow mode or read-only badge. To use it, run ' +
          '`jupyter labextension disable @jupyter/docprovider-extension @jupyter/collaboration-extension` ' +
          '(or pip uninstall jupyter-docprovider jupyter-collaboration-ui) and reload.',
        buttons: [Dialog.okButton()]
      });
      console.warn('jupyter-collab: front end disabled, found', others);
      return;
    }

    // Outputs that others write into a cell never render trusted here (see trust.ts).
    untrustSharedOutputs();

    const contents = app.serviceManager.contents;
    const drive = (contents as unknown as { defaultDrive?: Contents.IDrive }).defaultDrive;
    const registry = drive?.contentProviderRegistry;
    if (!registry) {
      console.error('jupyter-collab: this JupyterLab has no content provider registry (needs 4.4+)');
      return;
    }
    const provider = new CollabContentProvider({
      drive,
      serverSettings: drive.serverSettings,
      user: app.serviceManager.user
    });
    registry.register(PROVIDER_ID, provider);
    notebookFactory.contentProviderId = PROVIDER_ID;
    if (editorFactory) {
      editorFactory.contentProviderId = PROVIDER_ID;
    }

    // Preferences (cursor names, being followed), applied to every document as it opens.
    applySettings(settingRegistry, PLUGIN_ID, provider);

    // Remote cursors in every editor bound to a shared text that has awareness.
    extensions.addExtension({
      name: 'jupyter-collab:remote-cursors',
      factory: options => {
        const shared = options.model.sharedModel as any;
        if (!shared?.awareness || !shared?.ysource) {
          return null;
        }
        return EditorExtensionRegistry.createImmutableExtension(remoteCursors(shared.awareness, shared.ysource));
      }
    });

    // Per-document UI.
    const attached = new WeakMap<Widget, DocumentCollab>();
    const attach = (widget: NotebookPanel | IDocumentWidget<FileEditor>, isNotebook: boolean) => {
      const open = provider.documentOf(widget.context.model.sharedModel);
      if (!open || attached.has(widget)) {
        return;
      }
      attached.set(widget, new DocumentCollab(widget, open, isNotebook));
    };
    notebooks?.widgetAdded.connect((_, panel) => attach(panel, true));
    editors?.widgetAdded.connect((_, widget) => attach(widget, false));

    // Closes the user must act on: a dialog once per document.
    provider.documentOpened.connect((_, open) => {
      open.room.fatal.connect((__, action) => {
        void showDialog({
          title: `${open.path}: disconnected`,
          body: action.message,
          buttons: action.reload
            ? [Dialog.cancelButton({ label: 'Later' }), Dialog.okButton({ label: 'Reload' })]
            : [Dialog.okButton()]
        }).then(result => {
          if (action.reload && result.button.accept) {
            window.location.reload();
          }
        });
      });
      // Toolbar buttons and menus re-ask isEnabled (see guardCommands).
      open.room.rightsChanged.connect(() => app.commands.notifyCommandChanged());
      open.room.denied.connect((__, notice) => {
        Notification.warning(`${open.path}: ${notice.reason || 'change refused'}`, { autoClose: 5000 });
      });
    });

    // The document in front, if it is one of ours.
    const current = (): IOpenDocument | undefined => {
      const widget = app.shell.currentWidget as any;
      return provider.documentOf(widget?.context?.model?.sharedModel);
    };
    guardCommands(
      app.commands,
      () => {
        const rights = current()?.room.rights;
        return !!rights && !rights.canEdit;
      },
      () => Notification.info('View only: you cannot change this document.', { autoClose: 3000 })
    );

    labShell?.currentChanged.connect(() => app.commands.notifyCommandChanged());

    // Who is on which document.
    const global = new GlobalPresence(drive.serverSettings, app.serviceManager.user);
    const publish = () => global.setDocuments(joinedPaths(provider.documents), current()?.path ?? null);
    provider.documentsChanged.connect(publish);
    provider.documentOpened.connect((_, open) => open.room.statusChanged.connect(publish));
    labShell?.currentChanged.connect(publish);
    const panel = new CollaboratorsPanel(global, path => void app.commands.execute('docmanager:open', { path }));
    app.shell.add(panel, 'left', { rank: 320 });

    // The status bar shows the connection of the document in front.
    if (statusBar) {
      const item = new Widget();
      item.addClass('jp-collab-statusItem');
      const label = document.createElement('span');
      item.node.appendChild(label);
      let watched: RoomConnection | null = null;
      const render = () => watched && renderStatus(label, watched.status);
      const track = () => {
        watched?.statusChanged.disconnect(render);
        watched = current()?.room ?? null;
        watched?.statusChanged.connect(render);
        render();
        item.update();
      };
      labShell?.currentChanged.connect(track);
      statusBar.registerStatusItem('jupyter-collab:status', {
        item,
        align: 'left',
        rank: 5,
        isActive: () => !!current(),
        activeStateChanged: labShell?.currentChanged as any
      });
    }
  }
};

export default plugin;
