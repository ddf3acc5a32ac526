"""Rooms: a shared document (or awareness only), its connections and their broadcast."""
