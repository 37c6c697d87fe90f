"""The HTTP and WebSocket API: the app factory, its routes, request dependencies, bodies and answers."""
