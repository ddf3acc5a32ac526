/**
 * Our content provider: JupyterLab (4.4+) asks it for the shared model of every notebook
 * and text file its widget factories open, and for their contents and saves. Each shared
 * model (@jupyter/ydoc YNotebook / YFile, the models JupyterLab's editors bind to) gets a
 * RoomConnection to our server's room for that file.
 */
import { ISharedDocument, YFile, YNotebook } from '@jupyter/ydoc';
import { Contents, IContentProvider, ServerConnection, User } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import { RoomConnection } from './room';

export const PROVIDER_ID = 'jupyter-collab';

/** A document open on a room. */
export interface IOpenDocument {
  path: string;
  contentType: string;
  model: ISharedDocument;
  room: RoomConnection;
}

export class CollabContentProvider implements IContentProvider {
  constructor(options: {
    drive: Contents.IDrive;
    serverSettings: ServerConnection.ISettings;
    user: User.IManager;
  }) {
    this._drive = options.drive;
    this._serverSettings = options.serverSettings;
    this._user = options.user;
    this.sharedModelFactory = {
      collaborative: true,
      createNew: options => this._createNew(options)
    };
    // A renamed file keeps its room (the server's file id follows it): re-key it.
    this._drive.fileChanged.connect((_, change) => {
      const oldPath = change.oldValue?.path;
      const newPath = change.newValue?.path;
      if (change.type !== 'rename' || !oldPath || !newPath) {
        return;
      }
      for (const [k, open] of this._byKey) {
        if (open.path === oldPath) {
          this._byKey.delete(k);
          open.path = newPath;
          open.room.renamed(newPath);
          this._byKey.set(key(k.split(':')[0], open.contentType, newPath), open);
          this._documentsChanged.emit();
        }
      }
    });
  }

  readonly sharedModelFactory: Contents.ISharedFactory;

  get fileChanged(): ISignal<this, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  /** A document was opened on a room (presence, read-only and status attach to it). */
  get documentOpened(): ISignal<this, IOpenDocument> {
    return this._documentOpened;
  }

  /** The open document whose shared model is `model`, if it is ours. */
  documentOf(model: ISharedDocument | null | undefined): IOpenDocument | undefined {
    return model ? this._byModel.get(model) : undefined;
  }

  get documents(): IOpenDocument[] {
    return [...this._byKey.values()];
  }

  async get(path: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    const open = options?.format && options?.type ? this._byKey.get(key(options.format, options.type, path)) : undefined;
    if (open) {
      // The content comes over the room: ask the server only for the file's metadata,
      // and fail as soon as the room says it cannot be joined (403, 404, ...).
      const [model] = await Promise.all([
        this._drive.get(path, { ...options, content: false, contentProviderId: undefined }),
        open.room.ready
      ]);
      return { ...model, format: options!.format! };
    }
    return this._drive.get(path, { ...options, contentProviderId: undefined });
  }

  async save(path: string, options: Partial<Contents.IModel> = {}): Promise<Contents.IModel> {
    const open = options.format && options.type ? this._byKey.get(key(options.format, options.type, path)) : undefined;
    if (open) {
      // The server writes the file from the room; we only ask it to do it now.
      const status = await open.room.save();
      if (status === 'failed') {
        throw new Error(`The server could not save ${path}`);
      }
      return this.get(path, { type: options.type, format: options.format, content: false });
    }
    return this._drive.save(path, { ...options, contentProviderId: undefined } as any);
  }

  private _createNew(options: Contents.ISharedFactoryOptions): ISharedDocument | undefined {
    if (typeof options.format !== 'string' || !options.collaborative) {
      return undefined;
    }
    let model: YNotebook | YFile;
    if (options.contentType === 'notebook') {
      model = new YNotebook({ disableDocumentWideUndoRedo: true });
    } else if (options.contentType === 'file') {
      model = new YFile();
    } else {
      return undefined;
    }
    // Our identity in presence; the server replaces it with the authenticated one anyway.
    const setUser = () => model.awareness.setLocalStateField('user', this._user.identity);
    void this._user.ready.then(setUser).catch(() => undefined);
    const room = new RoomConnection({
      session: { path: options.path, format: options.format, type: options.contentType },
      doc: model.ydoc,
      awareness: model.awareness,
      serverSettings: this._serverSettings
    });
    const open: IOpenDocument = { path: options.path, contentType: options.contentType, model, room };
    const k = key(options.format, options.contentType, options.path);
    this._byKey.set(k, open);
    this._byModel.set(model, open);
    model.disposed.connect(() => {
      room.dispose();
      if (this._byKey.get(k) === open) {
        this._byKey.delete(k);
      }
      this._documentsChanged.emit();
    });
    this._documentOpened.emit(open);
    this._documentsChanged.emit();
    return model;
  }

  /** The set of open documents changed (for the global presence's document list). */
  get documentsChanged(): ISignal<this, void> {
    return this._documentsChanged;
  }

  private _drive: Contents.IDrive;
  private _serverSettings: ServerConnection.ISettings;
  private _user: User.IManager;
  private _byKey = new Map<string, IOpenDocument>();
  private _byModel = new WeakMap<ISharedDocument, IOpenDocument>();
  private _fileChanged = new Signal<this, Contents.IChangedArgs>(this);
  private _documentOpened = new Signal<this, IOpenDocument>(this);
  private _documentsChanged = new Signal<this, void>(this);
}

function key(format: string, type: string, path: string): string {
  return `${format}:${type}:${path}`;
}
