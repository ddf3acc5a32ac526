"""The shared-document model: what a room holds and every rule about its content.

- `kinds`: which shared model backs a room id, and content in and out of it;
- `cells`: cell operations by id (REST and the Python client);
- `locks`: the one lock rule (who may change which cell), used by the room's guard,
  and through it REST and merges, and mirrored by the Python client;
- `merge` and `textmerge`: three-way merges by cell id and by line;
- `encode`: a notebook written directly as one Yjs update (fast loading).

Nothing here knows about sockets, files or rooms.
"""
