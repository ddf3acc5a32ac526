"""HTTP and WebSocket endpoints of the extension."""
