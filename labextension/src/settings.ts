/**
 * Preferences from JupyterLab's settings registry (schema/plugin.json):
 * `cursorNames` ("always" or "hover") and `allowFollow`.
 */
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { CollabContentProvider, IOpenDocument } from './provider';

export interface IPreferences {
  cursorNames: 'always' | 'hover';
  allowFollow: boolean;
}

export function applySettings(
  registry: ISettingRegistry | null,
  pluginId: string,
  provider: CollabContentProvider
): void {
  const prefs: IPreferences = { cursorNames: 'always', allowFollow: true };
  const applyTo = (open: IOpenDocument) => {
    // Followers read it to grey out our avatar; the follow itself is theirs to stop.
    if (open.model.awareness.getLocalState()?.followable !== prefs.allowFollow) {
      open.model.awareness.setLocalStateField('followable', prefs.allowFollow);
    }
  };
  const applyAll = () => {
    document.body.classList.toggle('jp-collab-names-hover', prefs.cursorNames === 'hover');
    provider.documents.forEach(applyTo);
  };
  applyAll();
  if (registry) {
    void registry
      .load(pluginId)
      .then(settings => {
        const read = () => {
          prefs.cursorNames = settings.get('cursorNames').composite === 'hover' ? 'hover' : 'always';
          prefs.allowFollow = settings.get('allowFollow').composite !== false;
          applyAll();
        };
        read();
        settings.changed.connect(read);
      })
      .catch(error => console.warn('jupyter-collab: settings not loaded', error));
  }
  provider.documentOpened.connect((_, open) => applyTo(open));
}
